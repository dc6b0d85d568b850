package origin

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestPoolRestartedNodeReturns: against a real 4-node distributed MinIO,
// the first node is killed while reads run, so that the pool both ejects
// it (failed requests) and marks it down (active check). Restarted, it
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
	if _, err := mc.PutObject(ctx, "pool", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
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
	// Reads fail over to the other nodes; the failures on node 0 eject it.
	for i := 0; s.Endpoints()[0].Ejections == 0; i++ {
		if i == 200 {
			t.Fatalf("node 0 not ejected after 200 reads: %+v", s.Endpoints()[0])
		}
		// The live nodes may answer 404 for a moment after a node
		// died (MinIO's quorum read); this test is about the pool.
		if _, err := s.Stat(ctx, "pool", "k"); err != nil {
			t.Logf("Stat with one node dead: %v", err)
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
