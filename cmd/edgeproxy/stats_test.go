package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestStatsEndToEnd runs the binary with token auth and statistics on a
// real redis-server, downloads one file as 8 parallel ranges, and checks
// what the application backends read: the access counter, the hot set, the
// task reaching COMPLETED exactly once with every byte counted once, and
// the download log stream.
func TestStatsEndToEnd(t *testing.T) {
	r := testenv.NewRedis(t)
	rdb := r.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	root := t.TempDir()
	const size = 8 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "stats-e2e-token-0123456789"
	if err := rdb.Set(ctx, "download:token:"+token, "file_id=f.bin&user_id=u1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	sub := rdb.Subscribe(ctx, "download:events")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	p := start(t, []string{"-config", "../../config.yaml"}, tokenDirEnv(root, r.Addr,
		"EDGEPROXY_STATS_FLUSH_INTERVAL=100ms",
		"EDGEPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"EDGEPROXY_ADMIN_KEY="+adminKey,
	))

	// 8 parallel ranges, as aria2 would fetch it.
	const parts = 8
	var wg sync.WaitGroup
	got := make([][]byte, parts)
	errs := make([]error, parts)
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+p.addr+"/download/f.bin", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", i*size/parts, (i+1)*size/parts-1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusPartialContent {
				b, _ := io.ReadAll(resp.Body)
				errs[i] = fmt.Errorf("part %d: status %d: %s", i, resp.StatusCode, b)
				return
			}
			got[i], errs[i] = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], data[i*size/parts:(i+1)*size/parts]) {
			t.Fatalf("part %d: wrong bytes", i)
		}
	}

	taskKey := stats.TaskKeyPrefix + stats.TaskID(token, "f.bin")
	var task map[string]string
	testenv.Poll(context.Background(), 10*time.Second, func() bool {
		task, _ = rdb.HGetAll(ctx, taskKey).Result()
		n, _ := rdb.Get(ctx, stats.AccessKeyPrefix+"f.bin").Int64()
		return task["status"] == "COMPLETED" && n == parts
	})
	if task["status"] != "COMPLETED" || task["bytes_delivered"] != fmt.Sprint(size) || task["bytes_total"] != fmt.Sprint(size) {
		t.Fatalf("task %s = %v, want COMPLETED with %d of %d bytes", taskKey, task, size, size)
	}
	if n, _ := rdb.Get(ctx, stats.AccessKeyPrefix+"f.bin").Int64(); n != parts {
		t.Fatalf("access counter = %d, want %d", n, parts)
	}
	if score, err := rdb.ZScore(ctx, "hotset", "f.bin").Result(); err != nil || score != parts {
		t.Fatalf("hot set score = %v, %v; want %d", score, err, parts)
	}

	// COMPLETED was published exactly once: count events up to a marker
	// published after the download (Pub/Sub preserves order per publisher
	// connection... and the marker goes after every event already sent).
	if err := rdb.Publish(ctx, "download:events", "marker").Err(); err != nil {
		t.Fatal(err)
	}
	completed := 0
	for {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Payload == "marker" {
			break
		}
		if bytes.Contains([]byte(msg.Payload), []byte(`"COMPLETED"`)) {
			completed++
		}
	}
	if completed != 1 {
		t.Fatalf("COMPLETED published %d times, want 1", completed)
	}

	// The download log has one entry per response, and no token.
	var entries []redis.XMessage
	testenv.Poll(context.Background(), 10*time.Second, func() bool {
		entries, _ = rdb.XRange(ctx, "download:log", "-", "+").Result()
		return len(entries) >= parts
	})
	if len(entries) != parts {
		t.Fatalf("download log has %d entries, want %d", len(entries), parts)
	}
	for _, e := range entries {
		if e.Values["file_id"] != "f.bin" || e.Values["user_id"] != "u1" || e.Values["route"] != "download" || e.Values["status"] != "completed" {
			t.Fatalf("log entry %v: want file_id f.bin, user_id u1, route download, status completed", e.Values)
		}
		for k, v := range e.Values {
			if s, _ := v.(string); bytes.Contains([]byte(s), []byte(token)) {
				t.Fatalf("log entry field %s holds the token", k)
			}
		}
	}
	if bytes.Contains([]byte(p.stderr.String()), []byte(token)) {
		t.Fatal("the proxy's log holds the token")
	}

	// The admin API reads the same numbers back.
	admin, _ := p.adminAddr.Load().(string)
	if admin == "" {
		t.Fatal("the admin listener logged no address")
	}
	for path, want := range map[string]string{
		"/v1/stats/hot?n=5":                         `"file_id":"f.bin"`,
		"/v1/stats/files/f.bin":                     fmt.Sprintf(`"accesses":%d`, parts),
		"/v1/tasks/" + stats.TaskID(token, "f.bin"): `"status":"COMPLETED"`,
	} {
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(want)) {
			t.Errorf("GET %s = %d %s, want 200 with %s", path, resp.StatusCode, body, want)
		}
	}
}

const adminKey = "admin-key-for-tests-0123456789"
