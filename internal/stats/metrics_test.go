package stats

import (
	"context"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCollectors(t *testing.T) {
	rdb := client(t, testenv.Redis(t).Addr)
	cfg := testConfig(t)
	cfg.MaxPending = 1
	r := newTestRecorder(t, cfg, rdb)
	u := uniq(t)
	r.Access(u + "a")
	r.Access(u + "b") // dropped
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	for _, c := range r.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"edgeproxy_stats_access_flushes_total":        1,
		"edgeproxy_stats_access_flush_failures_total": 0,
		"edgeproxy_stats_access_dropped_total":        1,
		"edgeproxy_stats_access_pending_files":        0,
		"edgeproxy_stats_progress_dropped_total":      0,
		"edgeproxy_stats_progress_queue_depth":        0,
		"edgeproxy_stats_log_dropped_total":           0,
		"edgeproxy_stats_log_queue_depth":             0,
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	if len(got) != 13 {
		t.Errorf("%d metrics gathered, want 13: %v", len(got), got)
	}
}
