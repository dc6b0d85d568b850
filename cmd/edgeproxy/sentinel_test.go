package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// sentinelResult is one request of the failover load.
type sentinelResult struct {
	at         time.Time
	valid      bool
	status     int
	code       string // the JSON error code, if any
	retryAfter string
	err        error
}

// TestSentinelFailoverUnderLoad runs the binary against Redis behind three
// Sentinels (tokens, revocation, statistics and the cluster-wide limiter
// all on it), keeps a paced load of downloads with fresh valid tokens and
// of requests with invalid tokens, and kills the master with SIGKILL.
// Invariants: an invalid token never gets a 2xx; a valid one gets its
// bytes or, while no master is reachable, 503 auth_unavailable with
// Retry-After (fail closed, never open); after the failover downloads
// succeed again, revocations reach the edge through the re-established
// subscription, and statistics land on the new master. The time from the
// kill to the first download after which none failed is logged.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	s := testenv.NewSentinel(t)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	root := t.TempDir()
	data := bytes.Repeat([]byte("sentinel-failover"), 8<<10) // 136 KiB
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Each valid request uses a token of its own, so that every one is a
	// Redis lookup (a cached token would not test Redis at all).
	const tokens = 6000
	pipe := rdb.Pipeline()
	for i := range tokens {
		pipe.Set(ctx, "download:token:"+validToken(i), "file_id=f.bin&user_id=u1", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	s.WaitReplicated(t) // a failover must not lose the tokens

	p := start(t, []string{"-config", "../../config.yaml"}, []string{
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=b",
		"EDGEPROXY_PROXY_DOWNLOAD_AUTH=token",
		"EDGEPROXY_ORIGIN_KIND=dir",
		"EDGEPROXY_ORIGIN_DIR_ROOT=" + root,
		"EDGEPROXY_REDIS_ADDRS=" + strings.Join(s.Addrs, ","),
		"EDGEPROXY_REDIS_MASTER_NAME=" + s.MasterName,
		"EDGEPROXY_STATS_FLUSH_INTERVAL=100ms",
		// Generous for a loaded machine running -race; a dead master
		// refuses connections at once, so this does not slow the failures.
		"EDGEPROXY_AUTH_BUDGET=1s",
		"EDGEPROXY_AUTH_CACHE_TTL=1m",
		// All requests come from 127.0.0.1: the invalid ones must not get
		// the valid ones throttled.
		"EDGEPROXY_AUTH_FAILURES_PER_MINUTE=100000000",
		"EDGEPROXY_LIMITER_REQUEST_RATE=100000",
		"EDGEPROXY_LIMITER_REQUEST_BURST=100000",
		"EDGEPROXY_LIMITER_CLUSTER_WIDE=true",
	})
	url := "http://" + p.addr + "/download/f.bin"
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(token string, valid bool) sentinelResult {
		r := sentinelResult{valid: valid}
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		r.at = time.Now()
		if err != nil {
			r.err = err
			return r
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		r.status, r.err, r.retryAfter = resp.StatusCode, err, resp.Header.Get("Retry-After")
		if resp.StatusCode == http.StatusOK && valid && !bytes.Equal(body, data) {
			r.err = fmt.Errorf("wrong bytes: %d of %d", len(body), len(data))
		}
		var e struct {
			Code string `json:"code"`
		}
		if resp.StatusCode != http.StatusOK && json.Unmarshal(body, &e) == nil {
			r.code = e.Code
		}
		return r
	}

	// The load: 3 workers with valid tokens and 1 with invalid ones, each
	// paced at one request per 20ms, until stop or the tokens run out.
	var (
		mu      sync.Mutex
		results []sentinelResult
		next    atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	record := func(r sentinelResult) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	worker := func(valid bool, w int) {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if !valid {
				record(get(fmt.Sprintf("invalid-token-%d-%08d-xxxxxxxx", w, i), false))
				continue
			}
			n := next.Add(1) - 1
			if n >= tokens {
				return
			}
			record(get(validToken(int(n)), true))
		}
	}
	for w := range 4 {
		wg.Add(1)
		go worker(w != 0, w)
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	countOK := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.valid && r.status == http.StatusOK {
				n++
			}
		}
		return n
	}
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return countOK() >= 20 }) {
		t.Fatalf("no load before the failover: %d downloads ok\n%s", countOK(), p.stderr.String())
	}

	killed := time.Now()
	s.KillMaster(t)
	failover := s.WaitFailover(t, time.Minute)
	// Keep the load up until 40 downloads in a row have succeeded after
	// the failover (or the deadline passes), then 1s more.
	recovered := func() bool {
		mu.Lock()
		defer mu.Unlock()
		run := 0
		for _, r := range results {
			if !r.valid || r.at.Before(killed.Add(failover)) {
				continue
			}
			if r.status == http.StatusOK && r.err == nil {
				run++
			} else {
				run = 0
			}
		}
		return run >= 40
	}
	if !testenv.Poll(context.Background(), 60*time.Second, recovered) {
		stopLoad()
		t.Fatalf("downloads did not resume within 60s of the failover\n%s", summarize(results, killed))
	}
	time.Sleep(time.Second)
	stopLoad()

	// The invariants, over every request.
	var lastFail, firstOKAfter time.Time
	failed := 0
	for _, r := range results {
		switch {
		case !r.valid && r.err == nil && r.status >= 200 && r.status < 300:
			t.Errorf("invalid token got %d at %s after the kill: auth failed open", r.status, r.at.Sub(killed))
		case !r.valid && r.err != nil:
			t.Errorf("invalid-token request failed: %v", r.err)
		case !r.valid && r.status == http.StatusServiceUnavailable && (r.code != "auth_unavailable" || r.retryAfter == ""):
			t.Errorf("invalid token during the failover: 503 code %q Retry-After %q, want auth_unavailable with Retry-After", r.code, r.retryAfter)
		case !r.valid:
		case r.err != nil:
			t.Errorf("download at %s after the kill: %v", r.at.Sub(killed), r.err)
		case r.status == http.StatusOK:
			if !lastFail.IsZero() && firstOKAfter.IsZero() {
				firstOKAfter = r.at
			}
		case r.status == http.StatusServiceUnavailable && r.code == "auth_unavailable" && r.retryAfter != "":
			lastFail, firstOKAfter = r.at, time.Time{}
			failed++
		default:
			t.Errorf("download at %s after the kill: status %d code %q Retry-After %q", r.at.Sub(killed), r.status, r.code, r.retryAfter)
		}
	}
	if failed == 0 {
		t.Errorf("no download failed closed during the failover: the test did not exercise it\n%s", summarize(results, killed))
	}
	if !lastFail.IsZero() && lastFail.Before(killed) {
		t.Errorf("a download failed before the kill\n%s", summarize(results, killed))
	}
	t.Logf("%d requests; sentinels promoted the replica %s after the kill; %d downloads failed closed (503 auth_unavailable); downloads recovered %s after the kill",
		len(results), failover.Round(time.Millisecond), failed, firstOKAfter.Sub(killed).Round(time.Millisecond))

	// Revocation reaches the edge over the subscription re-established on
	// the new master: a token cached for a minute is refused at once.
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool {
		n, err := rdb.PubSubNumSub(ctx, "download:token:revoked").Result()
		return err == nil && n["download:token:revoked"] > 0
	}) {
		t.Fatal("the edge did not resubscribe to revocations on the new master")
	}
	const revoked = "sentinel-revoked-token-0123456789"
	if err := rdb.Set(ctx, "download:token:"+revoked, "file_id=f.bin&user_id=u1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if r := get(revoked, true); r.status != http.StatusOK {
		t.Fatalf("token before revocation: %d %q", r.status, r.code)
	}
	if err := rdb.Del(ctx, "download:token:"+revoked).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Publish(ctx, "download:token:revoked", revoked).Err(); err != nil {
		t.Fatal(err)
	}
	if !testenv.Poll(context.Background(), 5*time.Second, func() bool { return get(revoked, true).status != http.StatusOK }) {
		t.Fatal("a revoked token is still served 5s after the revocation (cache_ttl 1m): the revocation subscription was not restored")
	}

	// Statistics reach the new master.
	before := countOK()
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool {
		n, err := rdb.Get(ctx, stats.AccessKeyPrefix+"f.bin").Int()
		return err == nil && n > 0
	}) {
		t.Fatalf("no access count on the new master after %d downloads", before)
	}
}

func validToken(i int) string { return fmt.Sprintf("sentinel-valid-token-%08d", i) }

// summarize prints the statuses over time for a failure message.
func summarize(results []sentinelResult, killed time.Time) string {
	var b strings.Builder
	last := ""
	for _, r := range results {
		line := fmt.Sprintf("valid=%v status=%d code=%s err=%v", r.valid, r.status, r.code, r.err)
		if line != last {
			fmt.Fprintf(&b, "%+8dms %s\n", r.at.Sub(killed).Milliseconds(), line)
			last = line
		}
	}
	return b.String()
}

// TestSentinelPassword: with Sentinels that require a password,
// redis.sentinel_username and redis.sentinel_password (read from config.yaml
// and the environment like every key) reach go-redis's failover client, which
// then finds the master; without them it cannot.
func TestSentinelPassword(t *testing.T) {
	s := testenv.NewSentinelAuth(t, "sentinel-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := append(cleanEnv(),
		"EDGEPROXY_REDIS_ADDRS="+strings.Join(s.Addrs, ","),
		"EDGEPROXY_REDIS_MASTER_NAME="+s.MasterName)
	cfg, err := loadConfig("../../config.yaml", append(env,
		"EDGEPROXY_REDIS_SENTINEL_USERNAME=default",
		"EDGEPROXY_REDIS_SENTINEL_PASSWORD=sentinel-secret"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	if err := rdb.Set(ctx, "sentinel-auth", "ok", time.Minute).Err(); err != nil {
		t.Fatalf("SET through authenticated Sentinels: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: s.MasterAddr()})
	defer direct.Close()
	if v, err := direct.Get(ctx, "sentinel-auth").Result(); err != nil || v != "ok" {
		t.Fatalf("the master holds %q, %v", v, err)
	}

	// The same without the Sentinel password: no master, an error.
	cfg, err = loadConfig("../../config.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	bad := newRedis(cfg.Redis)
	defer bad.Close()
	if err := bad.Ping(ctx).Err(); err == nil {
		t.Fatal("PING through Sentinels without their password succeeded")
	}
}
