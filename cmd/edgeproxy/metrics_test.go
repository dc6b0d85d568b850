package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

// TestWrapTimedKeepsPresigning checks the latency wrapper exposes
// PresignGet exactly when the store has it, so redirect routes over a
// directory origin still answer redirect_unsupported instead of failing
// inside the wrapper.
func TestWrapTimedKeepsPresigning(t *testing.T) {
	dir, err := origin.NewDir(origin.DirConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := wrapTimed(dir); isPresigner(s) {
		t.Error("a directory origin became a Presigner through the wrapper")
	}
	s3, err := origin.NewS3(origin.S3Config{Endpoint: "127.0.0.1:9", AccessKey: "k", SecretKey: "secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := wrapTimed(s3); !isPresigner(s) {
		t.Error("an S3 origin lost PresignGet through the wrapper")
	}
}

func isPresigner(s origin.Store) bool {
	_, ok := s.(origin.Presigner)
	return ok
}

// TestCacheCollectorDiskCounters: the disk tier's writes and the writes its
// policy avoided are exported, with the cache's own counts.
func TestCacheCollectorDiskCounters(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "k"), make([]byte, 3<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := origin.NewDir(origin.DirConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{DiskDir: t.TempDir()}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	info, err := c.Stat(ctx, "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Open(ctx, "b", "k", info.ETag, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool { return c.Stats().DiskWrites == 1 }) {
		t.Fatalf("the chunk was not written to disk: %+v", c.Stats())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(cacheCollector(c)...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if m := f.GetMetric(); len(m) == 1 && m[0].GetCounter() != nil {
			got[f.GetName()] = m[0].GetCounter().GetValue()
		}
	}
	st := c.Stats()
	for name, want := range map[string]int64{
		"edgeproxy_cache_disk_writes_total":   st.DiskWrites,
		"edgeproxy_cache_disk_rejected_total": st.DiskRejected,
		"edgeproxy_cache_disk_shifts_total":   st.DiskShifts,
	} {
		if v, ok := got[name]; !ok || v != float64(want) {
			t.Errorf("%s = %v (exported: %v), want %d", name, v, ok, want)
		}
	}
}
