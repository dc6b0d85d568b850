package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/cache"
)

// requestKey is one series of edgeproxy_requests_total.
type requestKey struct {
	route  string
	status int
	cache  string
}

// requestCounters counts requests by route, status and cache status with
// a map of atomics read at scrape time: the request path does a map
// lookup under a read lock and an atomic add, and allocates only the first
// time a series appears (prometheus' CounterVec would build a label slice
// and hash it on every request).
type requestCounters struct {
	mu     sync.RWMutex
	counts map[requestKey]*atomic.Int64
	active atomic.Int64 // response bodies being streamed
	bytes  atomic.Int64 // body bytes accepted by clients

	reqDesc, activeDesc, bytesDesc *prometheus.Desc
}

func newRequestCounters() *requestCounters {
	return &requestCounters{
		counts:     make(map[requestKey]*atomic.Int64),
		reqDesc:    prometheus.NewDesc("edgeproxy_requests_total", "Download listener requests by route, status and cache status.", []string{"route", "status", "cache"}, nil),
		activeDesc: prometheus.NewDesc("edgeproxy_active_downloads", "Response bodies being streamed right now.", nil, nil),
		bytesDesc:  prometheus.NewDesc("edgeproxy_sent_bytes_total", "Body bytes accepted by clients.", nil, nil),
	}
}

// count adds one request of the finished response in ctx.
func (c *requestCounters) count(ctx *fasthttp.RequestCtx, route string) {
	k := requestKey{route: route, status: ctx.Response.StatusCode(), cache: cacheLabel(ctx.Response.Header.PeekBytes(hdrXCache))}
	c.mu.RLock()
	n := c.counts[k]
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if n = c.counts[k]; n == nil {
			n = new(atomic.Int64)
			c.counts[k] = n
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// cacheLabel maps the X-Cache value to a constant string.
func cacheLabel(v []byte) string {
	switch string(v) {
	case cache.StatusHit:
		return cache.StatusHit
	case cache.StatusMiss:
		return cache.StatusMiss
	case cache.StatusPartial:
		return cache.StatusPartial
	case cache.StatusStale:
		return cache.StatusStale
	case "":
		return "NONE"
	}
	return "OTHER"
}

// Describe implements prometheus.Collector.
func (c *requestCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reqDesc
	ch <- c.activeDesc
	ch <- c.bytesDesc
}

// Collect implements prometheus.Collector.
func (c *requestCounters) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	for k, n := range c.counts {
		ch <- prometheus.MustNewConstMetric(c.reqDesc, prometheus.CounterValue, float64(n.Load()), k.route, strconv.Itoa(k.status), k.cache)
	}
	c.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(c.activeDesc, prometheus.GaugeValue, float64(c.active.Load()))
	ch <- prometheus.MustNewConstMetric(c.bytesDesc, prometheus.CounterValue, float64(c.bytes.Load()))
}

// Collector returns the download listener's metrics for registration.
func (s *Server) Collector() prometheus.Collector { return s.metrics }
