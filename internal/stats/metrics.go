package stats

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns Prometheus collectors for the Recorder's counters,
// named edgeproxy_stats_*. They read atomics when scraped; register them
// once (for example with prometheus.MustRegister(r.Collectors()...)).
func (r *Recorder) Collectors() []prometheus.Collector {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "edgeproxy", Subsystem: "stats", Name: name, Help: help,
		}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "edgeproxy", Subsystem: "stats", Name: name, Help: help,
		}, func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		counter("access_flushes_total", "Access count flushes attempted with counts to write.", r.m.flushes.Load),
		counter("access_flush_failures_total", "Access count flushes that failed; their counts are kept for the next.", r.m.flushFailures.Load),
		counter("access_dropped_total", "Accesses dropped because max_pending distinct files were held.", r.m.droppedAccesses.Load),
		gauge("access_pending_files", "Distinct files whose access counts are held in memory.", r.pendingFiles),
		counter("progress_writes_total", "Download task updates written to Redis.", r.m.progressWrites.Load),
		counter("progress_write_failures_total", "Download task updates whose write failed (retried on the next sweep).", r.m.progressFailures.Load),
		counter("progress_dropped_total", "Download task updates dropped because the queue was full.", r.m.progressDropped.Load),
		gauge("progress_queue_depth", "Download task updates waiting to be written.", func() int { return len(r.updates) }),
		gauge("tasks", "Download tasks held in memory.", func() int {
			r.tasksMu.Lock()
			defer r.tasksMu.Unlock()
			return len(r.tasks)
		}),
		counter("tasks_evicted_total", "Download tasks evicted from memory (idle or over max_tasks).", r.m.tasksEvicted.Load),
		counter("log_entries_total", "Download log entries written to the stream.", r.m.logWritten.Load),
		counter("log_dropped_total", "Download log entries dropped: queue full or write failed.", r.m.logDropped.Load),
		gauge("log_queue_depth", "Download log entries waiting to be written.", func() int { return len(r.entries) }),
	}
}
