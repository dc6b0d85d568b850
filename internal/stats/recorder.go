package stats

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// Recorder gathers access counts, download progress and the download log
// of one edge node and writes them to Redis in the background. Its request
// path methods (Access, StartTransfer, Transfer.Delivered, Transfer.Finish)
// touch only memory and never wait for Redis. It is safe for concurrent
// use.
type Recorder struct {
	cfg  Config
	rdb  redis.UniversalClient
	log  *slog.Logger
	now  func() time.Time
	seed maphash.Seed

	taskSeeds [2]maphash.Seed // of taskKey

	// Access counting (access.go).
	shards    [accessShards]accessShard
	live      atomic.Int64                        // distinct entries in shards
	pendingN  atomic.Int64                        // len(pending), readable without flushMu
	flushMu   sync.Mutex                          // serialises flushes; guards pending
	pending   map[string]int64                    // counts kept across failed flushes
	held      atomic.Pointer[map[string]struct{}] // ids of pending, for Access
	heldStale bool                                // pending's ids changed since held was built

	// Progress (progress.go, writer.go).
	tasksMu  sync.Mutex
	tasks    map[taskKey]*task
	lru      taskList
	activeMu sync.Mutex
	active   map[*Transfer]struct{}
	dirtyMu  sync.Mutex
	dirty    map[*task]struct{} // tasks whose last update was not written
	updates  chan update
	scriptOK atomic.Bool // progress script known to be loaded

	// Download log (log.go).
	entries chan logEntry

	closed   atomic.Bool // Close has begun: request path methods do nothing
	drained  atomic.Bool // Close has returned: the queues are not read any more
	stop     chan struct{}
	base     context.Context // parent of background batches; cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closeErr error
	isClosed bool

	m counters
}

// counters are the package's metrics; all are atomics read by Stats and
// the Prometheus collectors.
type counters struct {
	flushes          atomic.Int64
	flushFailures    atomic.Int64
	flushedCommands  atomic.Int64
	droppedAccesses  atomic.Int64
	progressWrites   atomic.Int64
	progressFailures atomic.Int64
	progressDropped  atomic.Int64
	tasksEvicted     atomic.Int64
	logWritten       atomic.Int64
	logDropped       atomic.Int64
	logFailures      atomic.Int64
}

// New returns a Recorder writing to rdb and starts its background writers;
// Close stops them. A nil logger discards. rdb may be a client, a cluster
// client or a ring; nothing is sent to it before the first flush.
func New(cfg Config, rdb redis.UniversalClient, log *slog.Logger) (*Recorder, error) {
	return newRecorder(cfg, rdb, log, time.Now)
}

// newRecorder is New with the clock passed in (tests pass a fake one).
func newRecorder(cfg Config, rdb redis.UniversalClient, log *slog.Logger, now func() time.Time) (*Recorder, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, errors.New("stats: nil redis client")
	}
	log = logging.For(log, "stats")
	r := &Recorder{
		cfg:       c,
		rdb:       rdb,
		log:       log,
		now:       now,
		seed:      maphash.MakeSeed(),
		taskSeeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		pending:   make(map[string]int64),
		tasks:     make(map[taskKey]*task),
		active:    make(map[*Transfer]struct{}),
		dirty:     make(map[*task]struct{}),
		updates:   make(chan update, c.ProgressQueue),
		entries:   make(chan logEntry, c.LogQueue),
		stop:      make(chan struct{}),
	}
	r.base, r.cancel = context.WithCancel(context.Background())
	for i := range r.shards {
		r.shards[i].m = make(map[string]int64)
	}
	r.wg.Add(3)
	go r.every(r.cfg.FlushInterval, r.flushOnce)
	go r.every(r.cfg.ProgressInterval, func() { r.sweep(r.now(), false) })
	go writeBatches(r, r.updates, func(ctx context.Context, b []update) { r.writeUpdates(ctx, b) })
	if !r.cfg.DisableLog {
		r.wg.Add(1)
		var buf logBuf // owned by the one log writer goroutine
		go writeBatches(r, r.entries, func(ctx context.Context, b []logEntry) { r.writeLog(ctx, &buf, b) })
	}
	return r, nil
}

// Close stops the background writers and writes what is left: pending
// access counts, the progress of transfers still open, queued progress
// updates and log entries. ctx bounds all of it, including waiting for a
// background batch stuck on an unresponsive Redis; whatever cannot be
// written in time is dropped (and counted). Request path methods called
// after Close do nothing. Close is idempotent and returns the first error.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.isClosed {
		return r.closeErr
	}
	r.isClosed = true
	r.closed.Store(true)
	defer r.drained.Store(true)
	close(r.stop)
	// In-flight background batches may finish, unless ctx ends first.
	defer context.AfterFunc(ctx, r.cancel)()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.closeErr = wrap("close: background writers still busy", ctx.Err())
		return r.closeErr
	}

	var errs []error
	if err := r.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	r.sweep(r.now(), true)
	if err := r.drainUpdates(ctx); err != nil {
		errs = append(errs, err)
	}
	if !r.cfg.DisableLog {
		if err := r.drainLog(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	r.cancel()
	r.closeErr = errors.Join(errs...)
	return r.closeErr
}

// batchCtx returns a context for one background Redis batch.
func (r *Recorder) batchCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.base, r.cfg.Timeout)
}

// Stats is a snapshot of the Recorder's counters, for tests and admin
// pages; Collectors exports the same numbers to Prometheus.
type Stats struct {
	Flushes           int64 // access flushes attempted with something to write
	FlushFailures     int64 // of which failed (counts kept for the next)
	FlushedCommands   int64 // Redis commands sent by successful flushes
	DroppedAccesses   int64 // accesses dropped because MaxPending was reached
	PendingFiles      int   // distinct files whose counts are held in memory
	ProgressWrites    int64 // task updates written to Redis
	ProgressFailures  int64 // task updates whose write failed (retried later)
	ProgressDropped   int64 // task updates dropped because the queue was full
	ProgressQueue     int   // task updates waiting
	Tasks             int   // tasks held in memory
	TasksEvicted      int64 // tasks evicted (idle or over MaxTasks)
	LogWritten        int64 // log entries written
	DroppedLogEntries int64 // log entries dropped: queue full or write failed
	LogQueue          int   // log entries waiting
}

// Stats returns a snapshot of the counters.
func (r *Recorder) Stats() Stats {
	r.tasksMu.Lock()
	ntasks := len(r.tasks)
	r.tasksMu.Unlock()
	return Stats{
		Flushes:           r.m.flushes.Load(),
		FlushFailures:     r.m.flushFailures.Load(),
		FlushedCommands:   r.m.flushedCommands.Load(),
		DroppedAccesses:   r.m.droppedAccesses.Load(),
		PendingFiles:      r.pendingFiles(),
		ProgressWrites:    r.m.progressWrites.Load(),
		ProgressFailures:  r.m.progressFailures.Load(),
		ProgressDropped:   r.m.progressDropped.Load(),
		ProgressQueue:     len(r.updates),
		Tasks:             ntasks,
		TasksEvicted:      r.m.tasksEvicted.Load(),
		LogWritten:        r.m.logWritten.Load(),
		DroppedLogEntries: r.m.logDropped.Load(),
		LogQueue:          len(r.entries),
	}
}

// wrap prefixes a Redis error with the operation.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("stats: %s: %w", op, err)
}
