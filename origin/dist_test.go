package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestPoolRestartedNodeReturns: against a real 4-node distributed MinIO,
// the first node is killed while reads run, so that the pool both ejects
// it (a failed request) and marks it down (active check). None of the
// reads may end in a 404: the live nodes can answer NoSuchKey the moment
// a node dies, and the pool must confirm that on another node. Restarted, it
// passes its active check and must receive requests again at once, not
// only when its ejection (an hour here) ends: a check that passes after
// failing means the node came back, like Envoy's
// successful_active_health_check_uneject_host.
func TestPoolRestartedNodeReturns(t *testing.T) {
	cluster := testenv.NewMinIOCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mc := cluster.Client(t, 1)
	if err := mc.MakeBucket(ctx, "pool", minio.MakeBucketOptions{}); err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("data"), 1<<18)
	distPut(t, ctx, mc, "k", data)
	s, err := newS3(S3Config{Endpoints: cluster.Endpoints, AccessKey: cluster.AccessKey, SecretKey: cluster.SecretKey,
		EjectAfter: 1, EjectTime: time.Hour, MaxEjectTime: time.Hour, RetryBackoff: time.Millisecond}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tick := make(chan time.Time)
	go s.pool.run(tick)
	check := func() { // the second tick is taken once the first check finished
		tick <- time.Now()
		tick <- time.Now()
	}
	check()
	if st := s.Endpoints()[0]; !st.Up {
		t.Fatalf("before the kill: %+v", st)
	}

	if _, err := s.Stat(ctx, "pool", "k"); err != nil {
		t.Fatalf("Stat before: %v", err)
	}
	cluster.Kill(t, 0)
	// Reads fail over to the other nodes. The live nodes may answer 404
	// for a moment after a node died (seen on the first read, 2.6 ms
	// after the kill); the pool confirms such a 404 on another node.
	for range 50 {
		if _, err := s.Stat(ctx, "pool", "k"); errors.Is(err, ErrNotFound) {
			t.Errorf("Stat with one node dead: %v", err)
		} else if err != nil {
			t.Fatalf("Stat with one node dead: %v", err)
		}
	}
	// The pool may have taken node 0 out before any read went to it (its
	// connections closed); one read sent to it ejects it.
	if s.Endpoints()[0].Ejections == 0 {
		err := s.pool.attempt(s.pool.eps[0], s.pool.slow, func(e *endpoint) error {
			_, err := e.core.StatObject(ctx, "pool", "k", minio.StatObjectOptions{})
			return err
		})
		if err == nil || s.Endpoints()[0].Ejections == 0 {
			t.Fatalf("a read on the dead node: %v; %+v", err, s.Endpoints()[0])
		}
	}
	check()
	if st := s.Endpoints()[0]; st.Up {
		t.Fatalf("killed node still up: %+v", st)
	}

	cluster.Restart(t, 0)
	check()
	if st := s.Endpoints()[0]; !st.Up {
		t.Fatalf("restarted node not back in the pool after a passing check: %+v", st)
	}
	before := s.Endpoints()[0].Requests
	for i := 0; s.Endpoints()[0].Requests == before; i++ {
		if i == 200 {
			t.Fatalf("restarted node received none of 200 reads")
		}
		// A node just restarted may refuse a read while it settles; what
		// matters here is that it is asked.
		if _, err := s.Stat(ctx, "pool", "k"); err != nil {
			t.Logf("Stat after the restart: %v", err)
		}
	}
}

// TestPoolNoFalseNotFoundOnKill: the moment one node of a 4-node
// distributed MinIO dies, a live node may answer a HEAD of an object that
// exists with NoSuchKey (seen 2.6 ms after a SIGKILL, on the first request
// after it, in 2 of 4 runs of TestPoolRestartedNodeReturns). A 404 from
// the pool is final for the edge and its negative cache, so once the pool
// has seen a node fail (a request, a check, or a connection closed by it)
// it confirms a 404 on another node: over a bounded loop of Stats and
// ranged GETs of existing objects spanning the kill, no ErrNotFound.
func TestPoolNoFalseNotFoundOnKill(t *testing.T) {
	cluster := testenv.NewMinIOCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mc := cluster.Client(t, 1)
	if err := mc.MakeBucket(ctx, "pool", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	const objects = 16
	// Half the objects are small enough for MinIO to inline them in
	// xl.meta, half are not (1 MiB, data in part files).
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for i := range objects {
		n := len(data)
		if i%2 == 0 {
			n = 64 << 10
		}
		if err := distPutErr(ctx, mc, fmt.Sprintf("k%d", i), data[:n]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewS3(S3Config{Endpoints: cluster.Endpoints, AccessKey: cluster.AccessKey, SecretKey: cluster.SecretKey,
		HealthInterval: 250 * time.Millisecond, RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range objects { // every node answers before the kill
		if _, err := s.Stat(ctx, "pool", fmt.Sprintf("k%d", i)); err != nil {
			t.Fatalf("Stat before the kill: %v", err)
		}
	}

	// The false 404s came from an idle cluster, for an object written just
	// before the kill and asked for in the first milliseconds after it:
	// a lone client's Stats come first, then concurrent workers' Stats and
	// ranged GETs, each for a bounded number of rounds.
	const workers, roundsAfter = 4, 150
	var (
		mu        sync.Mutex
		notFound  []string
		otherErrs int
		killedAt  time.Time
		killed    = make(chan struct{})
		wg        sync.WaitGroup
	)
	record := func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		since := time.Since(killedAt)
		switch {
		case errors.Is(err, ErrNotFound):
			notFound = append(notFound, fmt.Sprintf("%s, %v after the kill: %v", key, since, err))
		default:
			otherErrs++
			t.Logf("%s, %v after the kill: %v", key, since, err)
		}
	}
	for w := range workers {
		wg.Go(func() {
			<-killed
			for r := range roundsAfter {
				key := fmt.Sprintf("k%d", (w*7+r)%objects)
				if r%3 == 0 {
					key = fmt.Sprintf("fresh%d", r%2)
				}
				var err error
				if r%2 == 0 {
					_, err = s.Stat(ctx, "pool", key)
				} else {
					var rc io.ReadCloser
					if rc, err = s.Open(ctx, "pool", key, "", int64(r%4)<<10, 4<<10); err == nil {
						var got []byte
						got, err = io.ReadAll(rc)
						rc.Close()
						if err == nil && !bytes.Equal(got, data[int64(r%4)<<10:][:4<<10]) {
							t.Errorf("%s: wrong bytes", key)
						}
					}
				}
				if err != nil {
					record(key, err)
				}
			}
		})
	}
	// Each live node is also asked directly, to see which one answers
	// NoSuchKey, with what, and for how long after the kill.
	for n := 1; n < len(cluster.Endpoints); n++ {
		direct := cluster.Client(t, n)
		wg.Go(func() {
			<-killed
			for r := range 2 * roundsAfter {
				key := fmt.Sprintf("k%d", r%objects)
				_, err := direct.StatObject(ctx, "pool", key, minio.StatObjectOptions{})
				if err == nil {
					continue
				}
				mu.Lock()
				t.Logf("node %d directly, %v after the kill, %s: %v (code %q, status %d)", n, time.Since(killedAt), key, err,
					minio.ToErrorResponse(err).Code, minio.ToErrorResponse(err).StatusCode)
				mu.Unlock()
			}
		})
	}
	for i := range 2 {
		n := len(data) >> (i * 4)
		if err := distPutErr(ctx, mc, fmt.Sprintf("fresh%d", i), data[:n]); err != nil {
			t.Fatal(err)
		}
	}
	killedAt = time.Now()
	cluster.Kill(t, 0)
	for r := range 40 {
		key := fmt.Sprintf("fresh%d", r%2)
		if _, err := s.Stat(ctx, "pool", key); err != nil {
			record(key, err)
		}
	}
	close(killed)
	wg.Wait()
	t.Logf("endpoints: %+v; other errors: %d", s.Endpoints(), otherErrs)
	for _, nf := range notFound {
		t.Errorf("false not-found: %s", nf)
	}
}

// distPut writes data to bucket "pool" of the distributed MinIO, failing
// the test if it cannot within ctx.
func distPut(t *testing.T, ctx context.Context, mc *minio.Client, key string, data []byte) {
	t.Helper()
	if err := distPutErr(ctx, mc, key, data); err != nil {
		t.Fatal(err)
	}
}

// distPutErr writes data to bucket "pool", retrying here rather than in
// minio-go: a freshly started distributed MinIO answers SlowDown ("please
// reduce your request rate") for a while, and minio-go's own retry seeks
// the body while net/http may still be reading it for the failed attempt
// (a data race the race detector reports). A reader that cannot seek turns
// minio-go's retry off; each attempt here gets a fresh one.
func distPutErr(ctx context.Context, mc *minio.Client, key string, data []byte) error {
	for {
		_, err := mc.PutObject(ctx, "pool", key, io.MultiReader(bytes.NewReader(data)), int64(len(data)), minio.PutObjectOptions{})
		if err == nil {
			return nil
		}
		code := minio.ToErrorResponse(err).Code
		if code != "SlowDown" && code != "SlowDownWrite" && code != "XMinioServerNotInitialized" && code != "ServiceUnavailable" {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("put %s: %w (last: %v)", key, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
