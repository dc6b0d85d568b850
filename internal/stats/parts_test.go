package stats

import (
	"strconv"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// taskState returns the in-memory status and distinct bytes of tr's task.
func taskState(tr *Transfer) (Status, int64) {
	tr.t.mu.Lock()
	defer tr.t.mu.Unlock()
	return tr.t.status, tr.t.got.total()
}

// deliverParts feeds a multipart transfer whose parts are ranges, sending
// its first sent file bytes in steps of step, and finishes it with err.
func deliverParts(r *Recorder, info TransferInfo, ranges [][2]int64, sent, step int64, err error) *Transfer {
	info.Off, info.N, info.Parts = -1, 0, ranges
	tr := r.StartTransfer(info)
	for d := int64(0); d < sent; d += step {
		tr.Delivered(min(step, sent-d))
	}
	tr.Finish(err)
	return tr
}

// TestProgressMultipartForgery: the two sequences of issue 9 that used to
// report COMPLETED although most of the file was never sent. A multipart
// response adds exactly the ranges its parts carried.
func TestProgressMultipartForgery(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)

	t.Run("two ranges then the tail", func(t *testing.T) {
		u := uniq(t)
		info := TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 1_000_000}
		// Range: bytes=500000-999997,999999-999999 (all file bytes sent)
		tr := deliverParts(r, info, [][2]int64{{500000, 499998}, {999999, 1}}, 499999, 65536, nil)
		if st, got := taskState(tr); st == StatusCompleted || got != 499999 {
			t.Fatalf("after the multipart response: %s with %d bytes, want PROGRESSING with 499999", st, got)
		}
		// Range: bytes=500000-
		download(r, info, 500000, 500000, 65536, nil)
		if st, got := taskState(tr); st == StatusCompleted || got != 500000 {
			t.Fatalf("after bytes=500000-: %s with %d bytes, want PROGRESSING with 500000 (0-499999 never sent)", st, got)
		}
	})

	t.Run("32 one-byte ranges of 3000 bytes", func(t *testing.T) {
		u := uniq(t)
		info := TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 3000}
		var ranges [][2]int64
		for i := range int64(32) {
			ranges = append(ranges, [2]int64{i * 90, 1})
		}
		tr := deliverParts(r, info, ranges, 32, 1, nil)
		if st, got := taskState(tr); st == StatusCompleted || got != 32 {
			t.Fatalf("%s with %d bytes, want PROGRESSING with 32", st, got)
		}
	})

	t.Run("two ranges covering the file complete it", func(t *testing.T) {
		u := uniq(t)
		info := TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 3000}
		tr := deliverParts(r, info, [][2]int64{{1500, 1500}, {0, 1500}}, 3000, 1000, nil)
		if st, got := taskState(tr); st != StatusCompleted || got != 3000 {
			t.Fatalf("%s with %d bytes, want COMPLETED with 3000", st, got)
		}
		closeNow(t, r)
		if h := hget(t, rdb, TaskID(info.Token, info.FileID)); h["status"] != "COMPLETED" || h["bytes_delivered"] != "3000" {
			t.Fatalf("task hash %v", h)
		}
	})
}

// TestProgressMultipartCut: a multipart response cut short adds only the
// file bytes delivered, in part order: the whole first part and the head of
// the second, nothing of the third.
func TestProgressMultipartCut(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 1000}
	tr := deliverParts(r, info, [][2]int64{{800, 100}, {0, 100}, {400, 100}}, 150, 7, errCut)
	tr.t.mu.Lock()
	got := pairs(&tr.t.got)
	tr.t.mu.Unlock()
	if want := [][2]int64{{0, 50}, {800, 900}}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("spans %v, want %v", got, want)
	}
	if st, _ := taskState(tr); st != StatusAborted {
		t.Fatalf("status %s, want ABORTED", st)
	}
}

// TestProgressPartsOutsideFile: ranges reaching outside the file record
// only their bytes inside it, and a range-less response (Off -1 without
// Parts) records nothing.
func TestProgressPartsOutsideFile(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 100}
	tr := deliverParts(r, info, [][2]int64{{-10, 20}, {90, 50}}, 70, 70, nil)
	if _, got := taskState(tr); got != 20 { // [0,10) and [90,100)
		t.Fatalf("%d bytes, want 20", got)
	}
	u = uniq(t)
	info = TransferInfo{Token: "tok-" + u, FileID: "f-" + u, Total: 100, Off: -1, N: 100}
	tr = r.StartTransfer(info)
	tr.Delivered(100)
	tr.Finish(nil)
	if st, got := taskState(tr); st == StatusCompleted || got != 0 {
		t.Fatalf("range-less response: %s with %s bytes, want nothing recorded", st, strconv.FormatInt(got, 10))
	}
}
