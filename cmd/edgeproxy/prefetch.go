package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// PrefetchConfig warms this node's cache with the hottest files of the
// fleet-wide hot set, so a node that just started (or joined) serves the
// popular files from memory and disk instead of sending every first request
// to the origin.
type PrefetchConfig struct {
	// Enabled turns prefetching on (needs stats and the cache). Default false.
	Enabled bool `yaml:"enabled"`
	// TopN is how many of the hottest files each run considers. Default 20.
	TopN int `yaml:"top_n"`
	// Bytes bounds what one run reads from the origin. Default 1GiB; keep
	// it below the cache budget or the run evicts what it warmed.
	Bytes int64 `yaml:"bytes"`
	// Rate bounds the origin read rate of prefetching in bytes/s, so that
	// warming never competes with clients. Default 50MiB.
	Rate int64 `yaml:"rate"`
	// Interval between runs; the first runs at start. Default 10m.
	Interval time.Duration `yaml:"interval"`
}

// withDefaults returns c with zero fields set to their defaults (no value
// is invalid).
func (c PrefetchConfig) withDefaults() PrefetchConfig {
	if c.TopN == 0 {
		c.TopN = 20
	}
	if c.Bytes == 0 {
		c.Bytes = 1 << 30
	}
	if c.Rate == 0 {
		c.Rate = 50 << 20
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Minute
	}
	return c
}

// prefetcher reads hot files through the cache.
type prefetcher struct {
	cfg     PrefetchConfig
	cache   *cache.Cache
	hot     func(ctx context.Context, n int) ([]stats.HotFile, error)
	catalog proxy.FileCatalog // nil: file ids are keys of bucket
	bucket  string
	log     *slog.Logger
}

// loop runs a pass at start and every Interval until ctx ends.
func (p *prefetcher) loop(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.run(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// run warms the top files within the byte budget and returns the bytes read.
func (p *prefetcher) run(ctx context.Context) int64 {
	hot, err := p.hot(ctx, p.cfg.TopN)
	if err != nil {
		p.log.Warn("prefetch: hot set unavailable", "error", err)
		return 0
	}
	lim := rate.NewLimiter(rate.Limit(p.cfg.Rate), int(min(p.cfg.Rate, 1<<20)))
	var total int64
	warmed := 0
	for _, h := range hot {
		bucket, key := p.bucket, h.FileID
		if p.catalog != nil {
			m, err := p.catalog.Lookup(ctx, h.FileID)
			if err != nil {
				continue
			}
			bucket, key = m.Bucket, m.Key
		}
		if bucket == "" {
			continue
		}
		info, err := p.cache.Stat(ctx, bucket, key)
		if err != nil || info.Size == 0 {
			continue
		}
		if total+info.Size > p.cfg.Bytes {
			continue // a smaller file further down may still fit
		}
		n, err := p.warm(ctx, lim, bucket, key, info.ETag, info.Size)
		total += n
		if err != nil {
			if ctx.Err() != nil {
				return total
			}
			p.log.Warn("prefetch: file failed", "file_id", h.FileID, "error", err)
			continue
		}
		warmed++
		p.log.Info("prefetch: warmed", "file_id", h.FileID, "bytes", n, "accesses", h.Accesses, "total_bytes", total)
	}
	p.log.Info("prefetch: run done", "files", warmed, "bytes", total)
	return total
}

// warm reads one object through the cache at the configured rate.
func (p *prefetcher) warm(ctx context.Context, lim *rate.Limiter, bucket, key, etag string, size int64) (int64, error) {
	rc, err := p.cache.Open(ctx, bucket, key, etag, 0, size)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		want := min(len(buf), lim.Burst())
		k, err := rc.Read(buf[:want])
		n += int64(k)
		if k > 0 {
			if werr := lim.WaitN(ctx, k); werr != nil {
				return n, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
