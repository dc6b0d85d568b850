package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestInstantInvalidationTwoEdges runs two edges (two processes sharing
// nothing but MinIO and Redis) with meta_ttl 30s against a MinIO whose
// Redis notification target feeds invalidation.events_key. Both serve an
// object from cache; it is overwritten in MinIO, and the first request
// made 1s later must serve the new bytes on both; then it is deleted and
// the same must hold for 404. The propagation time (write returned to
// first new state seen, polled every 10ms) is logged.
func TestInstantInvalidationTwoEdges(t *testing.T) {
	r := testenv.NewRedis(t)
	const eventsKey = "minio:events"
	m := testenv.NewMinIOWithRedisEvents(t, r.Addr, eventsKey)
	bucket := m.NewBucket(t)
	m.NotifyBucket(t, bucket)
	rdb := r.Client(t)
	mc := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	put := func(key string, data []byte) time.Time {
		t.Helper()
		if _, err := mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}

	var edges []string
	var procs []*proc
	for range 2 {
		p := start(t, []string{"-config", "../../config.yaml"}, []string{
			"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
			"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=" + bucket,
			"EDGEPROXY_PROXY_ACCESS_LOG=false",
			"EDGEPROXY_ORIGIN_KIND=s3",
			"EDGEPROXY_ORIGIN_S3_ENDPOINT=" + m.Endpoint,
			"EDGEPROXY_ORIGIN_S3_ACCESS_KEY=" + m.AccessKey,
			"EDGEPROXY_ORIGIN_S3_SECRET_KEY=" + m.SecretKey,
			"EDGEPROXY_CACHE_META_TTL=30s",
			"EDGEPROXY_CACHE_NEGATIVE_TTL=30s",
			"EDGEPROXY_REDIS_ADDRS=" + r.Addr,
			"EDGEPROXY_INVALIDATION_EVENTS_KEY=" + eventsKey,
		})
		edges = append(edges, "http://"+p.addr+"/download/")
		procs = append(procs, p)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(edge, key string) (int, []byte, string) {
		t.Helper()
		resp, err := client.Get(edge + key)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b, resp.Header.Get("X-Cache")
	}
	serves := func(edge, key string, want []byte) bool {
		status, b, _ := get(edge, key)
		if want == nil {
			return status == http.StatusNotFound
		}
		return status == http.StatusOK && bytes.Equal(b, want)
	}
	// pollAll polls each edge every 10ms until it serves want (nil: 404)
	// and returns how long after since each one first did, or -1.
	pollAll := func(key string, want []byte, since time.Time, limit time.Duration) []time.Duration {
		out := make([]time.Duration, len(edges))
		var wg sync.WaitGroup
		for i, e := range edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = -1
				if testenv.Poll(context.Background(), limit-time.Since(since), func() bool { return serves(e, key, want) }) {
					out[i] = time.Since(since)
				}
			}()
		}
		wg.Wait()
		return out
	}

	// The edges subscribe in the background after start.
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool {
		n, err := rdb.PubSubNumSub(ctx, "cache:invalidate").Result()
		return err == nil && n["cache:invalidate"] == int64(len(edges))
	}) {
		t.Fatalf("the edges did not subscribe to invalidations; edge log:\n%s", procs[0].stderr.String())
	}

	v1 := bytes.Repeat([]byte("version one "), 50_000)
	v2 := bytes.Repeat([]byte("version two "), 50_000)
	put("obj", v1)
	for _, e := range edges {
		// The memory tier stores asynchronously: wait for a hit.
		hit := testenv.Poll(context.Background(), 10*time.Second, func() bool {
			status, b, xc := get(e, "obj")
			return status == http.StatusOK && bytes.Equal(b, v1) && xc == "HIT"
		})
		if !hit {
			t.Fatalf("%s: v1 is not served from cache", e)
		}
	}

	check := func(what string, want []byte, at time.Time) {
		t.Helper()
		took := pollAll("obj", want, at, time.Second)
		time.Sleep(time.Until(at.Add(time.Second)))
		for _, e := range edges {
			if !serves(e, "obj", want) {
				t.Errorf("%s: the first request 1s after the %s still serves the old state", e, what)
			}
		}
		t.Logf("%s propagated to the two edges in %v", what, took)
	}
	check("overwrite", v2, put("obj", v2))

	if err := mc.RemoveObject(ctx, bucket, "obj", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	check("delete", nil, time.Now())

	// A change made while the edges cannot hear of it (Redis down: MinIO's
	// event is lost) is still not served stale once they resubscribe:
	// subscribing expires their cached metadata, so they revalidate.
	v3 := bytes.Repeat([]byte("version three "), 40_000)
	v4 := bytes.Repeat([]byte("version four "), 40_000)
	put("obj", v3)
	for _, e := range edges {
		if !testenv.Poll(context.Background(), 10*time.Second, func() bool { return serves(e, "obj", v3) }) {
			t.Fatalf("%s: v3 not served", e)
		}
		if !testenv.Poll(context.Background(), 10*time.Second, func() bool { _, _, xc := get(e, "obj"); return xc == "HIT" }) {
			t.Fatalf("%s: v3 not served from cache", e)
		}
	}
	// Idle BLPOPs (1s each) have passed by now: none may have failed.
	for _, p := range procs {
		if l := p.stderr.String(); strings.Contains(l, "invalidation") && strings.Contains(l, "failed") {
			t.Fatalf("invalidation loop failed with Redis up:\n%s", l)
		}
	}
	r.Stop(t)
	put("obj", v4)
	for _, e := range edges {
		if !serves(e, "obj", v3) {
			t.Fatalf("%s: v3 no longer served while Redis is down; the test cannot tell resubscription from anything else", e)
		}
	}
	r.Start(t)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool {
		n, err := rdb.PubSubNumSub(ctx, "cache:invalidate").Result()
		return err == nil && n["cache:invalidate"] == int64(len(edges))
	}) {
		t.Fatalf("the edges did not resubscribe; edge log:\n%s", procs[0].stderr.String())
	}
	for _, e := range edges {
		if !serves(e, "obj", v4) {
			t.Errorf("%s: after resubscribing, the change missed while Redis was down is served stale", e)
		}
	}
}
