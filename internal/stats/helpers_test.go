package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the outage tests cause hundreds.
	redis.SetLogger(quietLogger{})
	testenv.Main(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

var uniqSeq atomic.Int64

// uniq returns a name unique in the shared Redis, for keys of one test.
func uniq(t testing.TB) string {
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano(), uniqSeq.Add(1))
}

// client returns a go-redis client for addr, closed when the test ends.
func client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	return testenv.RedisClient(t, addr)
}

// testConfig has keys unique to the test and no background flush, so
// tests flush explicitly.
func testConfig(t testing.TB) Config {
	u := uniq(t)
	return Config{
		FlushInterval:   time.Hour,
		HotKey:          "hot:" + u,
		ProgressChannel: "events:" + u,
		LogStream:       "log:" + u,
		NodeID:          "node-test",
	}
}

// newTestRecorder returns a Recorder closed when the test ends.
func newTestRecorder(t testing.TB, cfg Config, rdb redis.UniversalClient) *Recorder {
	t.Helper()
	r, err := New(cfg, rdb, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// within runs f in a goroutine and fails the test if it has not returned
// after d: the request path must never wait for Redis.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		t.Logf("%s took %s", what, time.Since(start))
	case <-time.After(d):
		t.Fatalf("%s blocked for more than %s", what, d)
	}
}

// event is one message published on the progress channel.
type event struct {
	TaskID         string `json:"task_id"`
	FileID         string `json:"file_id"`
	UserID         string `json:"user_id"`
	Status         Status `json:"status"`
	BytesDelivered int64  `json:"bytes_delivered"`
	BytesTotal     int64  `json:"bytes_total"`
}

// events collects what is published on a channel.
type events struct {
	t       testing.TB
	rdb     *redis.Client
	channel string
	mu      sync.Mutex
	got     []event
	raw     []string
	sub     *redis.PubSub
}

const sentinel = "--sentinel--"

// subscribe starts collecting messages on channel; it returns once the
// subscription is active.
func subscribe(t testing.TB, rdb *redis.Client, channel string) *events {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub := rdb.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	e := &events{t: t, rdb: rdb, channel: channel, sub: sub}
	ch := sub.Channel()
	go func() {
		for m := range ch {
			e.mu.Lock()
			e.raw = append(e.raw, m.Payload)
			if m.Payload != sentinel {
				var ev event
				if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
					t.Errorf("bad event %q: %v", m.Payload, err)
				}
				e.got = append(e.got, ev)
			}
			e.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close() })
	return e
}

// settle publishes a sentinel and waits for it: Redis delivers messages in
// order, so everything published before is then collected.
func (e *events) settle() []event {
	e.t.Helper()
	if err := e.rdb.Publish(context.Background(), e.channel, sentinel).Err(); err != nil {
		e.t.Fatal(err)
	}
	testenv.WaitFor(e.t, 5*time.Second, "sentinel", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.raw) > 0 && e.raw[len(e.raw)-1] == sentinel
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event(nil), e.got...)
}

// statuses returns the statuses published for task id, in order.
func statuses(evs []event, id string) []Status {
	var out []Status
	for _, ev := range evs {
		if ev.TaskID == id {
			out = append(out, ev.Status)
		}
	}
	return out
}

// commandCalls returns the total calls of every command but INFO from
// INFO commandstats.
func commandCalls(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// download feeds a transfer of [off, off+n) in chunks of step bytes and
// finishes it with err.
func download(r *Recorder, info TransferInfo, off, n, step int64, err error) {
	cut(r, info, off, n, n, step, err)
}

// cut feeds a transfer of [off, off+n) that delivers only its first sent
// bytes, then finishes with err.
func cut(r *Recorder, info TransferInfo, off, n, sent, step int64, err error) {
	info.Off, info.N = off, n
	tr := r.StartTransfer(info)
	for d := int64(0); d < sent; d += step {
		tr.Delivered(min(step, sent-d))
	}
	tr.Finish(err)
}

// hget reads the task hash of id.
func hget(t testing.TB, rdb *redis.Client, id string) map[string]string {
	t.Helper()
	m, err := rdb.HGetAll(context.Background(), TaskKeyPrefix+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
