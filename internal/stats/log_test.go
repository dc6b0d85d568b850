package stats

import (
	"context"
	"strconv"
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
