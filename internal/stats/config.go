package stats

import (
	"fmt"
	"os"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultFlushInterval is how often access counts are written. One
	// pipelined batch a second per node keeps Redis load independent of the
	// request rate while keeping counters at most a second stale.
	DefaultFlushInterval = time.Second
	// DefaultAccessTTL is how long a file:access:<id> counter lives after its
	// last flushed access.
	DefaultAccessTTL = 24 * time.Hour
	// DefaultHotKey is the sorted set of files by access count.
	DefaultHotKey = "hotset"
	// DefaultMaxPending bounds the distinct files whose counts wait in memory.
	DefaultMaxPending = 100_000
	// DefaultProgressTTL is how long a download:task:<id> hash lives after
	// its last update.
	DefaultProgressTTL = 24 * time.Hour
	// DefaultProgressChannel is where task status changes are published.
	DefaultProgressChannel = "download:events"
	// DefaultProgressInterval is the least time between two progress writes
	// of one task that carry no status change and less than 5% of progress.
	DefaultProgressInterval = time.Second
	// DefaultProgressQueue bounds the progress updates waiting for Redis.
	DefaultProgressQueue = 10_000
	// DefaultMaxTasks bounds the tasks whose byte spans are kept in memory.
	DefaultMaxTasks = 100_000
	// DefaultTaskIdle is how long a task with no transfer in progress is
	// kept in memory.
	DefaultTaskIdle = 30 * time.Minute
	// DefaultLogStream is the stream of finished transfers.
	DefaultLogStream = "download:log"
	// DefaultLogMaxLen is the approximate length the log stream is trimmed to.
	DefaultLogMaxLen = 1_000_000
	// DefaultLogQueue bounds the log entries waiting for Redis.
	DefaultLogQueue = 10_000
	// DefaultTimeout bounds one Redis batch (a flush, a pipeline of updates).
	DefaultTimeout = 2 * time.Second
)

// Redis keys outside the Config: backends read them by these names.
const (
	// AccessKeyPrefix + file id is the access counter of a file.
	AccessKeyPrefix = "file:access:"
	// TaskKeyPrefix + TaskID is the progress hash of a download task.
	TaskKeyPrefix = "download:task:"
)

// Config configures a Recorder. The zero value means the defaults.
type Config struct {
	// FlushInterval is how often the access counts gathered in memory are
	// written to Redis in one pipelined batch; default 1s. Longer means
	// fewer, larger batches and staler counters; a crash loses at most one
	// interval of counts.
	FlushInterval time.Duration `yaml:"flush_interval"`

	// AccessTTL is the TTL of file:access:<id> counters, renewed by every
	// flush that touches one; default 24h. A backend that syncs counts with
	// ReadAndReset must do so more often than this.
	AccessTTL time.Duration `yaml:"access_ttl"`

	// HotKey is the sorted set (member file id, score accesses) that flushes
	// add to and Hot reads; default "hotset". Without HotDaily it is
	// cumulative and never expires.
	HotKey string `yaml:"hot_key"`

	// HotDaily makes the hot set decay: flushes add to HotKey:YYYYMMDD (the
	// UTC day), which expires after two days, and Hot ranks the sum of
	// today's and yesterday's sets, so a file's heat fades within two days
	// of its last access. Hot then costs a ZUNIONSTORE of both days inside
	// a script (O(size of the sets)), fine for a backend polling it, not
	// for every request. In Redis Cluster give HotKey a hash tag
	// ("{hotset}") so the days and the script's scratch key share a slot.
	// Default false.
	HotDaily bool `yaml:"hot_daily"`

	// MaxPending bounds the distinct files whose counts are held in memory,
	// both those gathered since the last flush and those kept across failed
	// flushes; default 100000 (about 100 bytes each). Past it, accesses of
	// further files are dropped and counted (DroppedAccesses); files already
	// held keep counting. Larger rides out longer Redis outages of a busier
	// node at the cost of memory.
	MaxPending int `yaml:"max_pending"`

	// ProgressTTL is the TTL of download:task:<id> hashes, renewed by every
	// update; default 24h.
	ProgressTTL time.Duration `yaml:"progress_ttl"`

	// ProgressChannel is the channel task status changes are PUBLISHed on,
	// as JSON {task_id, file_id, user_id, status, bytes_delivered,
	// bytes_total}; default "download:events".
	ProgressChannel string `yaml:"progress_channel"`

	// ProgressInterval throttles progress writes of a task: always on a
	// status change; otherwise when this long has passed since its last
	// write and it has gained bytes, or when a tenth of it has passed and it
	// has gained 5% of the file; default 1s. So a task is written at most
	// about ten times per interval and at least once per interval while it
	// progresses. Shorter means fresher progress bars and more Redis writes.
	ProgressInterval time.Duration `yaml:"progress_interval"`

	// ProgressQueue bounds the progress updates waiting to be written;
	// default 10000. When full, the update is dropped and counted, and the
	// task is written again on the next ProgressInterval tick.
	ProgressQueue int `yaml:"progress_queue"`

	// MaxTasks bounds the tasks whose delivered byte spans are kept in
	// memory; default 100000. The least recently used task without a
	// transfer in progress is evicted first; tasks with transfers in
	// progress are never evicted, so the table may exceed MaxTasks by the
	// number of concurrent downloads. A task resumed after eviction starts
	// counting its distinct bytes afresh (Redis keeps the larger count).
	MaxTasks int `yaml:"max_tasks"`

	// TaskIdle is how long a task without a transfer in progress is kept in
	// memory; default 30m. A download resumed later than this is counted
	// afresh, as after eviction.
	TaskIdle time.Duration `yaml:"task_idle"`

	// LogStream is the stream each finished or aborted transfer is XADDed
	// to; default "download:log". See DisableLog.
	LogStream string `yaml:"log_stream"`

	// DisableLog turns the download log off. (An empty LogStream means the
	// default, as for every other field, so disabling needs its own switch.)
	DisableLog bool `yaml:"disable_log"`

	// LogMaxLen is the approximate length (XADD MAXLEN ~) the stream is
	// trimmed to; default 1000000.
	LogMaxLen int64 `yaml:"log_max_len"`

	// LogQueue bounds the log entries waiting to be written; default 10000.
	// When full, entries are dropped and counted (DroppedLogEntries).
	LogQueue int `yaml:"log_queue"`

	// NodeID names this edge node in the download log and the task hashes;
	// default the hostname.
	NodeID string `yaml:"node_id"`

	// Timeout bounds each Redis batch written in the background; default 2s.
	// It only delays the background writers, never a download.
	Timeout time.Duration `yaml:"timeout"`
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// first bad field.
func (cfg Config) withDefaults() (Config, error) {
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FlushInterval", &cfg.FlushInterval, DefaultFlushInterval},
		{"AccessTTL", &cfg.AccessTTL, DefaultAccessTTL},
		{"ProgressTTL", &cfg.ProgressTTL, DefaultProgressTTL},
		{"ProgressInterval", &cfg.ProgressInterval, DefaultProgressInterval},
		{"TaskIdle", &cfg.TaskIdle, DefaultTaskIdle},
		{"Timeout", &cfg.Timeout, DefaultTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return cfg, fmt.Errorf("stats: config: %s must not be negative, got %s", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	// Redis expiries have second (EXPIRE) or millisecond (PEXPIRE) resolution.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"AccessTTL", cfg.AccessTTL}, {"ProgressTTL", cfg.ProgressTTL}} {
		if d.v < time.Second {
			return cfg, fmt.Errorf("stats: config: %s must be at least 1s, got %s", d.name, d.v)
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxPending", &cfg.MaxPending, DefaultMaxPending},
		{"ProgressQueue", &cfg.ProgressQueue, DefaultProgressQueue},
		{"MaxTasks", &cfg.MaxTasks, DefaultMaxTasks},
		{"LogQueue", &cfg.LogQueue, DefaultLogQueue},
	}
	for _, d := range ints {
		if *d.v < 0 {
			return cfg, fmt.Errorf("stats: config: %s must not be negative, got %d", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.LogMaxLen < 0 {
		return cfg, fmt.Errorf("stats: config: LogMaxLen must not be negative, got %d", cfg.LogMaxLen)
	}
	if cfg.LogMaxLen == 0 {
		cfg.LogMaxLen = DefaultLogMaxLen
	}
	if cfg.HotKey == "" {
		cfg.HotKey = DefaultHotKey
	}
	if cfg.ProgressChannel == "" {
		cfg.ProgressChannel = DefaultProgressChannel
	}
	if cfg.LogStream == "" {
		cfg.LogStream = DefaultLogStream
	}
	if cfg.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown"
		}
		cfg.NodeID = h
	}
	return cfg, nil
}
