package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/catalogdb"
)

// syncCollectors returns the access-count sync's metrics. They live here,
// not in catalogdb, so that edgectl (which links catalogdb for `db
// migrate`) does not link Prometheus. With several nodes only one syncs
// per interval (the others count skipped runs): alert on the smallest
// edgeproxy_access_sync_lag_seconds across nodes.
func syncCollectors(s *catalogdb.Syncer) []prometheus.Collector {
	counter := func(name, help string, f func(catalogdb.SyncStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeproxy_access_sync_" + name, Help: help},
			func() float64 { return float64(f(s.Stats())) })
	}
	return []prometheus.Collector{
		counter("runs_total", "Access-count sync runs committed by this node (replays of a pending run included).",
			func(st catalogdb.SyncStats) int64 { return st.Runs }),
		counter("skipped_total", "Sync runs skipped because another node held the lock.",
			func(st catalogdb.SyncStats) int64 { return st.Skipped }),
		counter("failures_total", "Sync runs that failed; their counts wait in Redis for the next run.",
			func(st catalogdb.SyncStats) int64 { return st.Failures }),
		counter("rows_total", "Rows of file_access_counts upserted.",
			func(st catalogdb.SyncStats) int64 { return st.Rows }),
		counter("downloads_total", "Downloads moved from Redis into PostgreSQL.",
			func(st catalogdb.SyncStats) int64 { return st.Downloads }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeproxy_access_sync_lag_seconds",
			Help: "Seconds since this node last committed a sync run (since start when none)."},
			func() float64 {
				st := s.Stats()
				last := st.LastOK
				if last == 0 {
					last = st.Started
				}
				return time.Since(time.Unix(last, 0)).Seconds()
			}),
	}
}
