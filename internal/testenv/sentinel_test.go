package testenv

import (
	"context"
	"testing"
	"time"
)

// TestSentinelFailover checks the Sentinel set itself: the Sentinels agree
// on the master, and after KillMaster they promote the replica.
func TestSentinelFailover(t *testing.T) {
	s := NewSentinel(t)
	ctx := context.Background()
	if got := s.Master(ctx); got != s.MasterAddr() {
		t.Fatalf("master = %q, want %q", got, s.MasterAddr())
	}
	s.WaitReplicated(t)
	s.KillMaster(t)
	took := s.WaitFailover(t, time.Minute)
	t.Logf("failover took %s", took)
}
