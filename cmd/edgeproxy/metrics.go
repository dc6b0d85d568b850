package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
)

// timedOrigin measures origin latency (to the answer of Stat, and to the
// first byte's availability for Open) for the latency histogram.
type timedOrigin struct {
	origin.Store
	latency *prometheus.HistogramVec
	stat    prometheus.Observer
	open    prometheus.Observer
}

func newTimedOrigin(s origin.Store) *timedOrigin {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgeproxy_origin_latency_seconds",
		Help:    "Origin request latency until the answer's headers, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"op"})
	return &timedOrigin{Store: s, latency: h, stat: h.WithLabelValues("stat"), open: h.WithLabelValues("open")}
}

func (t *timedOrigin) Stat(ctx context.Context, bucket, key string) (origin.Info, error) {
	start := time.Now()
	info, err := t.Store.Stat(ctx, bucket, key)
	t.stat.Observe(time.Since(start).Seconds())
	return info, err
}

func (t *timedOrigin) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := t.Store.Open(ctx, bucket, key, etag, off, n)
	t.open.Observe(time.Since(start).Seconds())
	return rc, err
}

// timedPresigner is a timedOrigin over a store that can presign, so that
// redirect mode still finds origin.Presigner through the wrapper (and a
// store that cannot presign still answers redirect_unsupported).
type timedPresigner struct {
	*timedOrigin
	p origin.Presigner
}

func (t timedPresigner) PresignGet(ctx context.Context, bucket, key string, ttl time.Duration, filename string) (string, error) {
	return t.p.PresignGet(ctx, bucket, key, ttl, filename)
}

// wrapTimed returns the store to use (with PresignGet only when the inner
// store has it) and the timing wrapper for the metrics registry.
func wrapTimed(s origin.Store) (origin.Store, *timedOrigin) {
	t := newTimedOrigin(s)
	if p, ok := s.(origin.Presigner); ok {
		return timedPresigner{timedOrigin: t, p: p}, t
	}
	return t, t
}

// redisErrors counts failed Redis commands (not redis.Nil) through a hook.
type redisErrors struct{ n atomic.Int64 }

func (r *redisErrors) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			r.n.Add(1)
		}
		return c, err
	}
}

func (r *redisErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) {
			r.n.Add(1)
		}
		return err
	}
}

func (r *redisErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && !errors.Is(err, redis.Nil) {
			r.n.Add(1)
		}
		return err
	}
}

// newRegistry gathers every part's metrics into one registry.
func (a *app) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(a.proxy.Collector(), a.timed.latency)
	if a.cache != nil {
		reg.MustRegister(cacheCollector(a.cache)...)
	}
	if a.limiter != nil {
		reg.MustRegister(limiterCollector(a.proxy.Limiter)...)
	}
	if a.endpoints != nil {
		reg.MustRegister(endpointCollector(a.endpoints))
	}
	if rerr := a.redisErrs; rerr != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgeproxy_redis_errors_total", Help: "Redis commands and dials that failed.",
		}, func() float64 { return float64(rerr.n.Load()) }))
	}
	if a.stats != nil {
		reg.MustRegister(a.stats.Collectors()...)
	}
	if a.db != nil && a.db.syncer != nil {
		reg.MustRegister(syncCollectors(a.db.syncer)...)
	}
	return reg
}

func cacheCollector(c *cache.Cache) []prometheus.Collector {
	counter := func(name, help string, f func(cache.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeproxy_cache_" + name, Help: help},
			func() float64 { return float64(f(c.Stats())) })
	}
	gauge := func(name, help string, f func(cache.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeproxy_cache_" + name, Help: help},
			func() float64 { return float64(f(c.Stats())) })
	}
	bySource := prometheus.NewDesc("edgeproxy_bytes_served_total", "Bytes delivered to readers by where their chunk came from.", []string{"source"}, nil)
	return []prometheus.Collector{
		counter("hits_total", "Chunks served from memory or disk.", func(s cache.Stats) int64 { return s.Hits }),
		counter("misses_total", "Chunks that came from the origin.", func(s cache.Stats) int64 { return s.Misses }),
		counter("origin_bytes_total", "Bytes fetched from the origin by fills.", func(s cache.Stats) int64 { return s.OriginBytes }),
		counter("fills_total", "Origin requests made by fills.", func(s cache.Stats) int64 { return s.Fills }),
		counter("fill_errors_total", "Fills that failed.", func(s cache.Stats) int64 { return s.FillErrors }),
		counter("coalesced_waits_total", "Chunk reads that joined a fill in flight.", func(s cache.Stats) int64 { return s.CoalescedWaits }),
		counter("stale_serves_total", "Readers served stale because the origin failed.", func(s cache.Stats) int64 { return s.StaleServes }),
		counter("disk_errors_total", "Disk tier I/O failures.", func(s cache.Stats) int64 { return s.DiskErrors }),
		counter("disk_corrupt_total", "Disk chunks that failed verification.", func(s cache.Stats) int64 { return s.DiskCorrupt }),
		counter("disk_writes_total", "Chunk files written to the disk tier.", func(s cache.Stats) int64 { return s.DiskWrites }),
		counter("disk_rejected_total", "Filled chunks the disk policy declined to write (writes avoided).", func(s cache.Stats) int64 { return s.DiskRejected }),
		counter("disk_shifts_total", "Shifts of popularity the disk policy detected (it then forgot its frequencies).", func(s cache.Stats) int64 { return s.DiskShifts }),
		counter("disk_old_format_total", "Chunk files of an older format deleted at start.", func(s cache.Stats) int64 { return s.DiskOldFormat }),
		gauge("memory_bytes", "Memory tier cost now.", func(s cache.Stats) int64 { return s.MemoryBytes }),
		gauge("memory_max_bytes", "Memory tier budget.", func(s cache.Stats) int64 { return s.MemoryMaxBytes }),
		gauge("memory_pinned_bytes", "Chunks slow readers still send after the memory tier let them go; they come out of its budget.", func(s cache.Stats) int64 { return s.MemoryPinnedBytes }),
		gauge("disk_bytes", "Disk tier bytes now.", func(s cache.Stats) int64 { return s.DiskBytes }),
		gauge("disk_chunks", "Disk tier chunks now.", func(s cache.Stats) int64 { return s.DiskChunks }),
		counter("disk_sendfile_bytes_total", "Disk-tier bytes sent with sendfile(2), never read into the process.", func(s cache.Stats) int64 { return s.DiskSendfileBytes }),
		counter("disk_mapped_bytes_total", "Disk-tier bytes written to sockets from chunk files' mappings, never read into the process.", func(s cache.Stats) int64 { return s.DiskMappedBytes }),
		counter("disk_promotions_total", "Chunks read whole from disk to be offered to the memory tier.", func(s cache.Stats) int64 { return s.DiskPromotions }),
		gauge("disk_mapped_now_bytes", "Bytes of chunk files mapped now (page cache; counted in RSS once touched).", func(s cache.Stats) int64 { return s.DiskMappedNow }),
		gauge("disk_read_buffers", "Read buffers (80 KiB) held by disk-tier readers now.", func(s cache.Stats) int64 { return s.DiskReadBuffers }),
		gauge("meta_entries", "Objects in the metadata tier.", func(s cache.Stats) int64 { return s.MetaEntries }),
		collectorFunc{desc: bySource, collect: func(ch chan<- prometheus.Metric) {
			s := c.Stats()
			ch <- prometheus.MustNewConstMetric(bySource, prometheus.CounterValue, float64(s.BytesFromMemory), "memory")
			ch <- prometheus.MustNewConstMetric(bySource, prometheus.CounterValue, float64(s.BytesFromDisk), "disk")
			ch <- prometheus.MustNewConstMetric(bySource, prometheus.CounterValue, float64(s.BytesFromOrigin), "origin")
		}},
	}
}

// limiterCollector reads the limiter in effect: a reload may replace it
// (its counters then start again from zero, which Prometheus reads as a
// counter reset).
func limiterCollector(current func() *limiter.Limiter) []prometheus.Collector {
	l := limiterStats(current)
	rej := prometheus.NewDesc("edgeproxy_limiter_rejections_total", "Downloads refused by the limiter, by reason.", []string{"reason"}, nil)
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeproxy_limiter_clients", Help: "Clients tracked."},
			func() float64 { return float64(l.Stats().Clients) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeproxy_limiter_shaped_bytes_total", Help: "Bytes released by shaped readers."},
			func() float64 { return float64(l.Stats().BytesShaped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeproxy_limiter_waits_total", Help: "Slices that waited for tokens."},
			func() float64 { return float64(l.Stats().Waits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeproxy_limiter_wait_seconds_total", Help: "Time slices waited."},
			func() float64 { return l.Stats().WaitTime.Seconds() }),
		collectorFunc{desc: rej, collect: func(ch chan<- prometheus.Metric) {
			for reason, n := range l.Stats().Rejections {
				ch <- prometheus.MustNewConstMetric(rej, prometheus.CounterValue, float64(n), reason)
			}
		}},
	}
}

// endpointCollector reports each origin endpoint's health and counters,
// labelled by its host:port.
func endpointCollector(stats func() []origin.EndpointStat) prometheus.Collector {
	lbl := []string{"endpoint"}
	up := prometheus.NewDesc("edgeproxy_origin_endpoint_up", "1 when the endpoint passes its health check and is not ejected.", lbl, nil)
	inflight := prometheus.NewDesc("edgeproxy_origin_endpoint_in_flight", "Requests waiting for or streaming from the endpoint.", lbl, nil)
	reqs := prometheus.NewDesc("edgeproxy_origin_endpoint_requests_total", "Requests sent to the endpoint.", lbl, nil)
	fails := prometheus.NewDesc("edgeproxy_origin_endpoint_failures_total", "Requests that failed transiently or answered slowly.", lbl, nil)
	ejects := prometheus.NewDesc("edgeproxy_origin_endpoint_ejections_total", "Times the endpoint was ejected as an outlier.", lbl, nil)
	return collectorsFunc{descs: []*prometheus.Desc{up, inflight, reqs, fails, ejects}, collect: func(ch chan<- prometheus.Metric) {
		for _, e := range stats() {
			u := 0.0
			if e.Up {
				u = 1
			}
			ch <- prometheus.MustNewConstMetric(up, prometheus.GaugeValue, u, e.Endpoint)
			ch <- prometheus.MustNewConstMetric(inflight, prometheus.GaugeValue, float64(e.InFlight), e.Endpoint)
			ch <- prometheus.MustNewConstMetric(reqs, prometheus.CounterValue, float64(e.Requests), e.Endpoint)
			ch <- prometheus.MustNewConstMetric(fails, prometheus.CounterValue, float64(e.Failures), e.Endpoint)
			ch <- prometheus.MustNewConstMetric(ejects, prometheus.CounterValue, float64(e.Ejections), e.Endpoint)
		}
	}}
}

// collectorsFunc is collectorFunc for several descriptors.
type collectorsFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorsFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}
func (c collectorsFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// limiterStats adapts current to the Stats calls of limiterCollector; no
// limiter reads as zero.
type limiterStats func() *limiter.Limiter

func (f limiterStats) Stats() limiter.Stats {
	if l := f(); l != nil {
		return l.Stats()
	}
	return limiter.Stats{}
}

// collectorFunc adapts a function to prometheus.Collector.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
