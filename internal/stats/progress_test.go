package stats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

var errCut = errors.New("client gone")

// closeNow closes r, draining its queues, and fails the test on error.
func closeNow(t testing.TB, r *Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestProgressParallelRanges: a download manager's eight parallel ranges
// complete the task exactly once, with every byte counted once.
func TestProgressParallelRanges(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	ev := subscribe(t, rdb, cfg.ProgressChannel)
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	const part, total = 1 << 20, 8 << 20
	info := TransferInfo{Token: "tok-" + u, FileID: "file-" + u, UserID: "user-7", Total: total}
	id := TaskID(info.Token, info.FileID)

	var wg sync.WaitGroup
	for i := range int64(8) {
		wg.Go(func() { download(r, info, i*part, part, 64<<10, nil) })
	}
	wg.Wait()
	// A second complete pass (a re-download with the same token) adds nothing.
	download(r, info, 0, total, 1<<20, nil)
	closeNow(t, r)

	h := hget(t, rdb, id)
	if h["status"] != "COMPLETED" || h["bytes_delivered"] != strconv.Itoa(total) ||
		h["bytes_total"] != strconv.Itoa(total) || h["file_id"] != info.FileID || h["user_id"] != "user-7" ||
		h["node"] != "node-test" {
		t.Fatalf("task hash = %v", h)
	}
	if ttl := rdb.TTL(context.Background(), TaskKeyPrefix+id).Val(); ttl <= 0 || ttl > DefaultProgressTTL {
		t.Fatalf("task TTL = %s", ttl)
	}
	evs := ev.settle()
	var completed []event
	for _, e := range evs {
		if e.TaskID == id && e.Status == StatusCompleted {
			completed = append(completed, e)
		}
	}
	if len(completed) != 1 {
		t.Fatalf("COMPLETED published %d times, want once; statuses %v", len(completed), statuses(evs, id))
	}
	want := event{id, info.FileID, "user-7", StatusCompleted, total, total}
	if completed[0] != want {
		t.Fatalf("COMPLETED event %+v, want %+v", completed[0], want)
	}
	st := statuses(evs, id)
	if st[len(st)-1] != StatusCompleted {
		t.Fatalf("statuses %v: COMPLETED must be last", st)
	}
}

// TestProgressAbortResume: overlapping and resumed ranges are counted
// once; a cut transfer aborts the task, a resume completes it.
func TestProgressAbortResume(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	ev := subscribe(t, rdb, cfg.ProgressChannel)
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "file-" + u, UserID: "u1", Total: 1000}
	id := TaskID(info.Token, info.FileID)
	waitHash := func(status Status, bytes int) {
		t.Helper()
		testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("task %s with %d bytes", status, bytes), func() bool {
			h := hget(t, rdb, id)
			return h["status"] == string(status) && h["bytes_delivered"] == strconv.Itoa(bytes)
		})
	}

	download(r, info, 0, 600, 100, nil) // [0,600)
	waitHash(StatusProgressing, 600)

	// [400,1000) cut after 300 bytes adds [400,700): 100 new bytes, not 300.
	cut(r, info, 400, 600, 300, 100, errCut)
	waitHash(StatusAborted, 700)

	// The resume fetches the rest and completes the task.
	download(r, info, 700, 300, 100, nil)
	waitHash(StatusCompleted, 1000)

	// Later overlapping requests change nothing, even a failing one.
	download(r, info, 0, 1000, 250, nil)
	cut(r, info, 500, 500, 10, 10, errCut)
	closeNow(t, r)
	if h := hget(t, rdb, id); h["status"] != "COMPLETED" || h["bytes_delivered"] != "1000" {
		t.Fatalf("after completion: %v", h)
	}

	evs := ev.settle()
	want := []Status{StatusPending, StatusProgressing, StatusAborted, StatusProgressing, StatusCompleted}
	if got := statuses(evs, id); !slices.Equal(got, want) {
		t.Fatalf("published statuses %v, want %v", got, want)
	}
	for _, e := range evs {
		if e.TaskID == id && e.Status == StatusAborted && e.BytesDelivered != 700 {
			t.Fatalf("ABORTED event with %d bytes, want 700", e.BytesDelivered)
		}
	}
}

// TestProgressAbortWhileOthersActive: one of several parallel transfers
// failing does not abort the task while the others run; the task is
// ABORTED when the last ends incomplete.
func TestProgressAbortWhileOthersActive(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	ev := subscribe(t, rdb, cfg.ProgressChannel)
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "file-" + u, Total: 1000}
	id := TaskID(info.Token, info.FileID)

	a := r.StartTransfer(TransferInfo{Token: info.Token, FileID: info.FileID, Off: 0, N: 500, Total: 1000})
	b := r.StartTransfer(TransferInfo{Token: info.Token, FileID: info.FileID, Off: 500, N: 500, Total: 1000})
	a.Delivered(100)
	a.Finish(errCut)
	b.Delivered(500)
	b.Finish(nil)
	closeNow(t, r)

	want := []Status{StatusPending, StatusProgressing, StatusAborted}
	if got := statuses(ev.settle(), id); !slices.Equal(got, want) {
		t.Fatalf("published statuses %v, want %v", got, want)
	}
	if h := hget(t, rdb, id); h["bytes_delivered"] != "600" {
		t.Fatalf("task hash %v, want 600 bytes", h)
	}
}

// TestProgressThrottle drives the write throttle with a fake clock: a
// status change is written at once, 5% of progress after a tenth of the
// interval, anything after the interval, and nothing else.
func TestProgressThrottle(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.ProgressInterval = time.Hour // the background sweep never ticks
	clk := fakeclock.At(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r, err := newRecorder(cfg, rdb, testLogger(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, r)
	u := uniq(t)
	const total = 100 << 20
	const pct = total / 100
	tr := r.StartTransfer(TransferInfo{Token: "tok-" + u, FileID: "file-" + u, N: total, Total: total})
	defer tr.Finish(nil)
	sent := func() (Status, int64) {
		tr.t.mu.Lock()
		defer tr.t.mu.Unlock()
		return tr.t.sent, tr.t.sentBytes
	}
	steps := []struct {
		name    string
		advance time.Duration
		deliver int64 // in percent
		sweep   bool
		status  Status
		bytes   int64
	}{
		{"start is written", 0, 0, false, StatusPending, 0},
		{"below 5%: no sync", 0, 4, false, StatusPending, 0},
		{"first bytes: status change", 0, 1, false, StatusProgressing, 5 * pct},
		{"5% at once: too soon", time.Minute, 5, false, StatusProgressing, 5 * pct},
		{"5% after interval/10", 6 * time.Minute, 5, false, StatusProgressing, 15 * pct},
		{"1%: no write", 0, 1, true, StatusProgressing, 15 * pct},
		{"interval passed: swept", time.Hour, 0, true, StatusProgressing, 16 * pct},
		{"rest: completed at once", 0, 84, false, StatusCompleted, total},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.deliver > 0 {
			tr.Delivered(s.deliver * pct)
		}
		if s.sweep {
			r.sweep(clk.Now(), false)
		}
		if st, b := sent(); st != s.status || b != s.bytes {
			t.Fatalf("%s: last write %s %d bytes, want %s %d", s.name, st, b, s.status, s.bytes)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "writes", func() bool { return r.Stats().ProgressWrites == 5 })
}

// TestProgressSlowTransferSwept: a transfer too slow to cross a 5% mark is
// still written every ProgressInterval.
func TestProgressSlowTransferSwept(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.ProgressInterval = 20 * time.Millisecond
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "file-" + u, N: 100 << 20, Total: 100 << 20}
	id := TaskID(info.Token, info.FileID)
	tr := r.StartTransfer(info)
	defer tr.Finish(nil)
	tr.Delivered(1000)
	testenv.WaitFor(t, 5*time.Second, "swept progress", func() bool {
		h := hget(t, rdb, id)
		return h["status"] == "PROGRESSING" && h["bytes_delivered"] == "1000"
	})
	tr.Delivered(1000)
	testenv.WaitFor(t, 5*time.Second, "swept progress", func() bool {
		return hget(t, rdb, id)["bytes_delivered"] == "2000"
	})
}

func TestTaskEviction(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.MaxTasks = 3
	cfg.TaskIdle = time.Minute
	clk := fakeclock.At(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r, err := newRecorder(cfg, rdb, nil, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer closeNow(t, r)
	u := uniq(t)
	open := r.StartTransfer(TransferInfo{Token: "open-" + u, FileID: "f", N: 10, Total: 10})
	for i := range 10 {
		download(r, TransferInfo{Token: fmt.Sprint("tok-", u, i), FileID: "f", Total: 10}, 0, 10, 10, nil)
	}
	s := r.Stats()
	if s.Tasks > 3 || s.TasksEvicted < 8 {
		t.Fatalf("tasks %d evicted %d: MaxTasks not enforced", s.Tasks, s.TasksEvicted)
	}
	openID := r.taskKey("open-"+u, "f")
	has := func(k taskKey) bool {
		r.tasksMu.Lock()
		defer r.tasksMu.Unlock()
		return r.tasks[k] != nil
	}
	if !has(openID) {
		t.Fatal("a task with a transfer in progress was evicted")
	}
	// Idle tasks go after TaskIdle; the open one stays.
	clk.Advance(2 * time.Minute)
	r.sweep(clk.Now(), false)
	if s := r.Stats(); s.Tasks != 1 || !has(openID) {
		t.Fatalf("after idle sweep: %d tasks, open kept %v", s.Tasks, has(openID))
	}
	open.Finish(nil)
	clk.Advance(2 * time.Minute)
	r.sweep(clk.Now(), false)
	if s := r.Stats(); s.Tasks != 0 {
		t.Fatalf("after the last transfer ended and TaskIdle passed: %d tasks", s.Tasks)
	}
}

// TestTransferAfterCloseIsInert: request path calls after Close return at
// once and record nothing.
func TestTransferAfterCloseIsInert(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	closeNow(t, r)
	r.Access("x")
	tr := r.StartTransfer(TransferInfo{Token: "t", FileID: "x", N: 10, Total: 10})
	tr.Delivered(10)
	tr.Finish(nil)
	var nilTr *Transfer
	nilTr.Delivered(1)
	nilTr.Finish(nil)
	if s := r.Stats(); s.PendingFiles != 0 || s.Tasks != 0 || s.LogQueue != 0 {
		t.Fatalf("recorded after Close: %+v", s)
	}
}

// TestSweepAfterFinishKeepsAborted: a sweep that copied a transfer before
// its Finish and syncs it afterwards must not move the aborted task back
// to PROGRESSING; only a new transfer may.
func TestSweepAfterFinishKeepsAborted(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	u := uniq(t)
	tr := r.StartTransfer(TransferInfo{Token: "tok-" + u, FileID: "f", N: 100, Total: 100})
	tr.Delivered(40)
	tr.Finish(errCut)
	status := func() Status {
		tr.t.mu.Lock()
		defer tr.t.mu.Unlock()
		return tr.t.status
	}
	if s := status(); s != StatusAborted {
		t.Fatalf("after cut: %s", s)
	}
	tr.sync(time.Now(), true) // what a sweep holding a stale copy does
	r.sweep(time.Now(), true)
	if s := status(); s != StatusAborted {
		t.Fatalf("after a late sweep: %s, want ABORTED", s)
	}
	resume := r.StartTransfer(TransferInfo{Token: "tok-" + u, FileID: "f", Off: 40, N: 60, Total: 100})
	if s := status(); s != StatusProgressing {
		t.Fatalf("after resume started: %s, want PROGRESSING", s)
	}
	resume.Delivered(60)
	resume.Finish(nil)
	if s := status(); s != StatusCompleted {
		t.Fatalf("after resume: %s, want COMPLETED", s)
	}
}

// TestTask: Task reads back the hash a finished download wrote, and a task
// that never ran is ErrNoTask.
func TestTask(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	r := newTestRecorder(t, testConfig(t), rdb)
	u := uniq(t)
	info := TransferInfo{Token: "tok-" + u, FileID: "file-" + u, UserID: "user-9", Total: 1 << 20}
	download(r, info, 0, 1<<20, 64<<10, nil)
	closeNow(t, r)
	ctx := context.Background()
	h, err := r.Task(ctx, TaskID(info.Token, info.FileID))
	if err != nil || h["status"] != "COMPLETED" || h["file_id"] != info.FileID || h["user_id"] != "user-9" {
		t.Fatalf("Task = %v, %v; want the COMPLETED hash", h, err)
	}
	if h, err := r.Task(ctx, TaskID("no-such-token-"+u, info.FileID)); !errors.Is(err, ErrNoTask) || h != nil {
		t.Fatalf("missing task: %v, %v; want ErrNoTask", h, err)
	}
}
