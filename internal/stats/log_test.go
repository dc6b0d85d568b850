package stats

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestDownloadLogStream(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.LogMaxLen = 100
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	token := "secret-token-" + u
	base := TransferInfo{Token: token, FileID: "file-" + u, UserID: "user-1", Route: "dl",
		ClientIP: "127.0.0.1", CacheStatus: "HIT", Total: 1000, Start: time.Now().Add(-1500 * time.Millisecond)}
	download(r, base, 0, 1000, 100, nil)
	cut(r, base, 200, 500, 300, 100, errCut)
	closeNow(t, r)

	msgs, err := rdb.XRange(context.Background(), cfg.LogStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d log entries, want 2", len(msgs))
	}
	for i, want := range []map[string]string{
		{"off": "0", "len": "1000", "bytes": "1000", "status": "completed"},
		{"off": "200", "len": "500", "bytes": "300", "status": "aborted"},
	} {
		v := msgs[i].Values
		for k, w := range want {
			if v[k] != w {
				t.Errorf("entry %d: %s = %v, want %s", i, k, v[k], w)
			}
		}
		for k, w := range map[string]string{"node": "node-test", "user_id": "user-1", "file_id": base.FileID,
			"route": "dl", "cache": "HIT", "client_ip": "127.0.0.1", "task_id": TaskID(token, base.FileID)} {
			if v[k] != w {
				t.Errorf("entry %d: %s = %v, want %s", i, k, v[k], w)
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, v["time"].(string))
		if err != nil || time.Since(ts) > time.Minute {
			t.Errorf("entry %d: time %v: %v", i, v["time"], err)
		}
		if ms, err := strconv.Atoi(v["duration_ms"].(string)); err != nil || ms < 1500 {
			t.Errorf("entry %d: duration_ms %v, want >= 1500 (from Start)", i, v["duration_ms"])
		}
		for k, val := range v {
			if s, _ := val.(string); s == token {
				t.Errorf("entry %d: field %s holds the token", i, k)
			}
		}
	}
	if s := r.Stats(); s.LogWritten != 2 || s.DroppedLogEntries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDownloadLogDisabled(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.DisableLog = true
	r := newTestRecorder(t, cfg, rdb)
	download(r, TransferInfo{Token: "t", FileID: uniq(t), Total: 10}, 0, 10, 10, nil)
	closeNow(t, r)
	if n := rdb.Exists(context.Background(), cfg.LogStream).Val(); n != 0 {
		t.Fatal("disabled log was written")
	}
}

// TestDownloadLogNoToken: a transfer without a token is logged (empty
// task_id) but creates no task, in memory or in Redis.
func TestDownloadLogNoToken(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	r := newTestRecorder(t, cfg, rdb)
	file := "file-" + uniq(t)
	cut(r, TransferInfo{FileID: file, Route: "public", ClientIP: "127.0.0.1", Total: 1000}, 0, 1000, 600, 200, errCut)
	if s := r.Stats(); s.Tasks != 0 {
		t.Fatalf("%d tasks held for a transfer without a token", s.Tasks)
	}
	closeNow(t, r)
	msgs, err := rdb.XRange(context.Background(), cfg.LogStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d log entries, want 1", len(msgs))
	}
	for k, w := range map[string]string{"task_id": "", "file_id": file, "route": "public", "off": "0",
		"len": "1000", "bytes": "600", "status": "aborted", "node": "node-test"} {
		if v := msgs[0].Values[k]; v != w {
			t.Errorf("%s = %v, want %q", k, v, w)
		}
	}
	if n := rdb.Exists(context.Background(), TaskKeyPrefix+TaskID("", file)).Val(); n != 0 {
		t.Error("a task hash was written for a transfer without a token")
	}
	if s := r.Stats(); s.ProgressWrites != 0 || s.LogWritten != 1 {
		t.Fatalf("stats %+v", s)
	}

	cfg = testConfig(t)
	cfg.DisableLog = true
	off := newTestRecorder(t, cfg, rdb)
	if tr := off.StartTransfer(TransferInfo{FileID: file, Total: 10}); tr != nil {
		t.Error("without a token and without the log a transfer records nothing, want nil")
	}
}

// logBatch returns n finished entries of distinct files.
func logBatch(u string, n int) []logEntry {
	batch := make([]logEntry, n)
	at := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	for i := range batch {
		batch[i] = logEntry{at: at.Add(time.Duration(i) * time.Millisecond), taskID: fmt.Sprint("task-", i),
			info: &TransferInfo{FileID: fmt.Sprint(u, "-", i), UserID: "u", Route: "dl", CacheStatus: "MISS",
				ClientIP: "127.0.0.1", Off: int64(i), N: int64(2 * i)},
			bytes: int64(i), durMS: int64(1000 + i), failed: i%2 == 1}
	}
	return batch
}

// TestDownloadLogChunks: a batch larger than one script run is written
// whole and in order, every field of every entry in place, also after
// Redis lost its scripts.
func TestDownloadLogChunks(t *testing.T) {
	srv := testenv.NewRedis(t)
	rdb := client(t, srv.Addr)
	cfg := testConfig(t)
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	n := 2*logChunk + 7
	var buf logBuf
	for round := range 2 {
		if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if err := r.writeLog(context.Background(), &buf, logBatch(u, n)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	msgs, err := rdb.XRange(context.Background(), cfg.LogStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*n {
		t.Fatalf("%d log entries, want %d", len(msgs), 2*n)
	}
	for j, m := range msgs {
		i := j % n
		status := "completed"
		if i%2 == 1 {
			status = "aborted"
		}
		want := map[string]string{
			"time": time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC).Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z"),
			"node": "node-test", "task_id": fmt.Sprint("task-", i), "user_id": "u", "file_id": fmt.Sprint(u, "-", i),
			"route": "dl", "off": strconv.Itoa(i), "len": strconv.Itoa(2 * i), "bytes": strconv.Itoa(i),
			"status": status, "duration_ms": strconv.Itoa(1000 + i), "cache": "MISS", "client_ip": "127.0.0.1",
		}
		if len(m.Values) != len(want) {
			t.Fatalf("entry %d: %d fields, want %d: %v", j, len(m.Values), len(want), m.Values)
		}
		for k, w := range want {
			if m.Values[k] != w {
				t.Fatalf("entry %d: %s = %v, want %s", j, k, m.Values[k], w)
			}
		}
	}
	if s := r.Stats(); s.LogWritten != int64(2*n) || s.DroppedLogEntries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDownloadLogWriteFails: entries Redis refuses are dropped and counted,
// and the failure is reported.
func TestDownloadLogWriteFails(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	r := newTestRecorder(t, cfg, rdb)
	if err := rdb.Set(context.Background(), cfg.LogStream, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n := logChunk + 3
	var buf logBuf
	err := r.writeLog(context.Background(), &buf, logBatch(uniq(t), n))
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("err %v, want WRONGTYPE", err)
	}
	if s := r.Stats(); s.LogWritten != 0 || s.DroppedLogEntries != int64(n) {
		t.Fatalf("stats %+v", s)
	}
}
