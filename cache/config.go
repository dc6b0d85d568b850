package cache

import (
	"fmt"
	"time"

	"github.com/edgeproxy/edgeproxy/cache/policy"
)

// Config tunes the cache. The zero value means every default; a negative
// duration where noted switches the feature off. New validates it and names
// the offending key in its error.
type Config struct {
	// ChunkSize is the unit of storage, lookup and coalescing, in bytes.
	// Default 1 MiB; allowed 1 KiB to 64 MiB. Smaller chunks waste fewer
	// bytes on short ranges and let more distinct objects share the memory
	// budget; larger chunks mean fewer lookups, files and origin requests per
	// byte. An object of 4 KiB is stored as one 4 KiB chunk whatever the size.
	// Changing it orphans the chunks already on disk (they age out).
	ChunkSize int64 `yaml:"chunk_size"`

	// MemoryBytes is the byte budget of the memory tier (ristretto MaxCost).
	// Default 256 MiB. It also covers chunks that readers are still sending
	// after the tier let them go (slow clients): those come out of the
	// tier's share until the readers move on (pin.go). ristretto adds its
	// per-item bookkeeping to each chunk's cost.
	MemoryBytes int64 `yaml:"memory_bytes"`

	// MemoryItems is the number of chunks the memory tier is expected to hold
	// when full; ristretto keeps ten access counters per expected item
	// (about 3 bytes each). Default MemoryBytes/16 KiB, which suits a mix of
	// small objects and large ones. Too low blurs TinyLFU's frequency
	// estimates and the hit ratio drops; too high only costs memory.
	MemoryItems int64 `yaml:"memory_items"`

	// DiskDir is the directory of the disk tier. Empty (the default)
	// disables the tier. The cache owns the directory and deletes files in it
	// that are not valid chunks, so it uses only a directory that does not
	// exist yet, is empty, or carries the EDGEPROXY-CACHE marker file the
	// cache writes when it claims one; any other directory is refused at
	// start (DiskDirError). Use a local file system.
	DiskDir string `yaml:"disk_dir"`

	// DiskBytes is the byte budget of the disk tier, counting file sizes
	// (header included, not file-system block rounding). Default 10 GiB.
	// Chunks are deleted in the Policy's order to stay under it.
	DiskBytes int64 `yaml:"disk_bytes"`

	// Policy decides which chunks the disk tier writes and which it deletes
	// first: "tinylfu" (the default) or "lru". Under tinylfu a chunk is
	// written only if a frequency sketch says it is requested more often
	// than the chunks it would displace, and the disk keeps a segmented LRU;
	// on a Zipf(0.9) trace it served 0.13 more of the bytes from cache than
	// lru and wrote a twentieth as many files, and a one-off scan neither
	// evicts the hot set nor costs disk writes (docs/design.md). Its price
	// is a slower switch when popularity moves wholesale to new objects,
	// and a sketch of 8 bytes per 64 KiB of DiskBytes (a power of two, at most
	// 32 MiB).
	// lru writes every fill and deletes the least recently used chunk, as
	// nginx does; it is kept so operators can compare on their own traffic.
	// Changing it keeps the chunks on disk.
	Policy string `yaml:"policy"`

	// DiskQueue is how many chunks may wait for the disk writer. Default 64.
	// When the queue is full, new chunks are not written to disk (counted in
	// Stats.DiskDropped) instead of slowing fills: the disk tier is
	// best-effort. A longer queue absorbs bursts at the cost of up to
	// DiskQueue*ChunkSize bytes of memory.
	DiskQueue int `yaml:"disk_queue"`

	// Readahead is how many bytes one origin request fetches when a read
	// misses, rounded down to whole chunks (at least one). Default 8 MiB.
	// A sequential cold read keeps one such window in flight ahead of the
	// reader. Larger windows mean fewer origin round trips for big files but
	// more wasted bytes when clients hang up early; a read never fetches past
	// the end of the range it asked for.
	Readahead int64 `yaml:"readahead"`

	// FillMemory bounds the bytes of all origin fills in flight at once.
	// Default 8 windows of Readahead (64 MiB). Fills beyond it wait their
	// turn. It must be at least Readahead.
	FillMemory int64 `yaml:"fill_memory"`

	// FillTimeout bounds one origin fill (one ranged GET of up to Readahead
	// bytes). Default 60s. Fills run detached from clients, so this is what
	// stops a stuck origin from holding fill memory forever.
	FillTimeout time.Duration `yaml:"fill_timeout"`

	// MetaTTL is how long a Stat result is trusted before it is revalidated
	// with the origin. Default 30s. Longer means fewer origin Stat calls and
	// a longer delay before a changed object is noticed.
	MetaTTL time.Duration `yaml:"meta_ttl"`

	// NegativeTTL is how long "object not found" is remembered. Default 5s;
	// negative disables negative caching. It shields the origin from
	// repeated requests for missing keys but delays the appearance of a
	// newly uploaded object by up to this long.
	NegativeTTL time.Duration `yaml:"negative_ttl"`

	// MaxStale is how long after its metadata expired an object may still be
	// served from cache while the origin is unavailable or timing out
	// (stale-if-error). Default 1h; negative disables stale serving.
	MaxStale time.Duration `yaml:"max_stale"`

	// StaleRetry is how long a stale answer is reused before the origin is
	// asked again. Default 1s. It keeps an outage from costing every request
	// an origin timeout, at the price of noticing recovery up to this late.
	StaleRetry time.Duration `yaml:"stale_retry"`

	// StatTimeout bounds one origin Stat made to fill or revalidate the
	// metadata tier. Default 10s.
	StatTimeout time.Duration `yaml:"stat_timeout"`

	// MetaEntries bounds the number of objects whose metadata is cached.
	// Default 100000 (roughly 200 bytes each plus the key). When full, an
	// arbitrary entry makes room: metadata is cheap to refetch, so a
	// precise policy is not worth a lock on every hit.
	MetaEntries int `yaml:"meta_entries"`
}

// DefaultMemoryBytes is the memory tier's budget when MemoryBytes is zero
// (Stats.MemoryMaxBytes reports the budget in effect, from which the binary
// sizes the Go runtime's memory limit).
const DefaultMemoryBytes = 256 << 20

const (
	defaultChunkSize   = 1 << 20
	defaultDiskBytes   = 10 << 30
	defaultDiskQueue   = 64
	defaultReadahead   = 8 << 20
	defaultFillWindows = 8
	defaultFillTimeout = 60 * time.Second
	defaultMetaTTL     = 30 * time.Second
	defaultNegativeTTL = 5 * time.Second
	defaultMaxStale    = time.Hour
	defaultStaleRetry  = time.Second
	defaultStatTimeout = 10 * time.Second
	defaultMetaEntries = 100_000

	minChunkSize = 1 << 10
	maxChunkSize = 64 << 20
)

// withDefaults returns cfg with zero fields replaced by defaults, or an error
// naming the first invalid key.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = defaultChunkSize
	}
	if cfg.ChunkSize < minChunkSize || cfg.ChunkSize > maxChunkSize {
		return cfg, fmt.Errorf("cache: chunk_size %d: must be between %d and %d", cfg.ChunkSize, minChunkSize, maxChunkSize)
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	if cfg.MemoryBytes < cfg.ChunkSize {
		return cfg, fmt.Errorf("cache: memory_bytes %d: must be at least chunk_size (%d)", cfg.MemoryBytes, cfg.ChunkSize)
	}
	if cfg.MemoryItems == 0 {
		cfg.MemoryItems = max(cfg.MemoryBytes/(16<<10), 64)
	}
	if cfg.MemoryItems < 0 {
		return cfg, fmt.Errorf("cache: memory_items %d: must not be negative", cfg.MemoryItems)
	}
	if cfg.DiskBytes == 0 {
		cfg.DiskBytes = defaultDiskBytes
	}
	if cfg.DiskBytes < 0 {
		return cfg, fmt.Errorf("cache: disk_bytes %d: must not be negative", cfg.DiskBytes)
	}
	kind, err := policy.ParseKind(cfg.Policy)
	if err != nil {
		return cfg, fmt.Errorf("cache: policy %q: must be tinylfu or lru", cfg.Policy)
	}
	cfg.Policy = string(kind)
	if cfg.DiskQueue == 0 {
		cfg.DiskQueue = defaultDiskQueue
	}
	if cfg.DiskQueue < 0 {
		return cfg, fmt.Errorf("cache: disk_queue %d: must not be negative", cfg.DiskQueue)
	}
	if cfg.Readahead == 0 {
		cfg.Readahead = defaultReadahead
	}
	if cfg.Readahead < 0 {
		return cfg, fmt.Errorf("cache: readahead %d: must not be negative", cfg.Readahead)
	}
	cfg.Readahead = max(cfg.Readahead/cfg.ChunkSize, 1) * cfg.ChunkSize
	if cfg.FillMemory == 0 {
		cfg.FillMemory = defaultFillWindows * cfg.Readahead
	}
	if cfg.FillMemory < cfg.Readahead {
		return cfg, fmt.Errorf("cache: fill_memory %d: must be at least readahead (%d)", cfg.FillMemory, cfg.Readahead)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
		off  bool // a negative value disables the feature
	}{
		{"fill_timeout", &cfg.FillTimeout, defaultFillTimeout, false},
		{"meta_ttl", &cfg.MetaTTL, defaultMetaTTL, false},
		{"negative_ttl", &cfg.NegativeTTL, defaultNegativeTTL, true},
		{"max_stale", &cfg.MaxStale, defaultMaxStale, true},
		{"stale_retry", &cfg.StaleRetry, defaultStaleRetry, false},
		{"stat_timeout", &cfg.StatTimeout, defaultStatTimeout, false},
	}
	for _, d := range durations {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0 && !d.off:
			return cfg, fmt.Errorf("cache: %s %v: must not be negative", d.name, *d.v)
		}
	}
	if cfg.MetaEntries == 0 {
		cfg.MetaEntries = defaultMetaEntries
	}
	if cfg.MetaEntries < 0 {
		return cfg, fmt.Errorf("cache: meta_entries %d: must not be negative", cfg.MetaEntries)
	}
	return cfg, nil
}
