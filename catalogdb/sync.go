package catalogdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/edgeproxy/edgeproxy/internal/logging"
)

// Counters is the Redis side of the sync (stats.Recorder implements it):
// the steps of package doc's run, each one atomic in Redis. A step given a
// run that is not the pending one fails, so a syncer that lost its lock
// cannot move counts into a run another syncer is committing.
type Counters interface {
	PendingSync(ctx context.Context) (run string, err error)
	BeginSync(ctx context.Context, run string, period time.Time) error
	MoveToSync(ctx context.Context, run string) (int, error)
	SealSync(ctx context.Context, run string) (time.Time, map[string]int64, error)
	FinishSync(ctx context.Context, run string) error
}

// SyncConfig configures a Syncer; the zero value means the defaults.
type SyncConfig struct {
	// Interval between runs. Shorter keeps less in Redis (counters expire
	// after stats.access_ttl) and the totals in PostgreSQL fresher; each
	// run scans every counter. Default 1h; negative disables the sync.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one run. Default 5m.
	Timeout time.Duration `yaml:"timeout"`
	// Period is the length of the buckets of file_access_counts; a run's
	// counts go to the bucket holding its start. Default 1h.
	Period time.Duration `yaml:"period"`
}

// ErrSyncBusy is returned by Run when another syncer holds the lock.
var ErrSyncBusy = errors.New("catalogdb: another sync is running")

// syncLockID is the pg_try_advisory_lock key of the sync ("edge", 2).
const syncLockID = 0x65646765_00000002

// SyncStats are the Syncer's counters, for metrics.
type SyncStats struct {
	Runs      int64 // runs committed (replays of a pending run included)
	Skipped   int64 // runs skipped because another node held the lock
	Failures  int64 // runs that failed; their counts wait in Redis
	Rows      int64 // file rows upserted
	Downloads int64 // downloads moved into PostgreSQL
	LastOK    int64 // unix seconds of the last committed run; 0: none
	Started   int64 // unix seconds of NewSyncer
}

// Syncer moves access counts from Redis into file_access_counts, exactly
// once (see the package doc).
type Syncer struct {
	cfg      SyncConfig
	pool     *pgxpool.Pool
	counters Counters
	log      *slog.Logger
	now      func() time.Time

	// hook, when set by tests, runs at the named stage of a run; an error
	// aborts the run there, as a crash would.
	hook func(stage string) error

	runs, skipped, failures, rows, downloads, lastOK atomic.Int64
	started                                          int64 // unix seconds of NewSyncer
}

// NewSyncer returns a Syncer; it does nothing until Run or Loop.
func NewSyncer(cfg SyncConfig, pool *pgxpool.Pool, counters Counters, log *slog.Logger) (*Syncer, error) {
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Period == 0 {
		cfg.Period = time.Hour
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("catalogdb: sync config timeout=%v: must be positive", cfg.Timeout)
	case cfg.Period < time.Minute:
		return nil, fmt.Errorf("catalogdb: sync config period=%v: at least 1m", cfg.Period)
	}
	return &Syncer{cfg: cfg, pool: pool, counters: counters, log: logging.For(log, "access-sync"), now: time.Now,
		started: time.Now().Unix()}, nil
}

// Stats returns the counters of the runs so far.
func (s *Syncer) Stats() SyncStats {
	return SyncStats{Runs: s.runs.Load(), Skipped: s.skipped.Load(), Failures: s.failures.Load(),
		Rows: s.rows.Load(), Downloads: s.downloads.Load(), LastOK: s.lastOK.Load(), Started: s.started}
}

// Loop runs the sync at once (finishing a run a crashed node left
// pending), then every Interval, until ctx ends.
func (s *Syncer) Loop(ctx context.Context) {
	if s.cfg.Interval < 0 {
		return
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.Run(rctx)
		cancel()
		switch {
		case errors.Is(err, ErrSyncBusy):
			s.log.Debug("access sync skipped: another node is syncing")
		case err != nil:
			s.log.Warn("access sync failed; counts stay in redis for the next run", "err", err)
		}
	}
}

// Run performs one sync: it finishes a pending run, then moves and
// commits the counters. It returns ErrSyncBusy when another syncer holds
// the lock.
func (s *Syncer) Run(ctx context.Context) error {
	err := s.run(ctx)
	switch {
	case errors.Is(err, ErrSyncBusy):
		s.skipped.Add(1)
	case err != nil:
		s.failures.Add(1)
	}
	return err
}

func (s *Syncer) run(ctx context.Context) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(syncLockID)).Scan(&locked); err != nil {
		conn.Release()
		return fmt.Errorf("catalogdb: sync lock: %w", err)
	}
	if !locked {
		conn.Release()
		return ErrSyncBusy
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(syncLockID)); uerr != nil {
			// The session must end, or it would keep the lock.
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}()

	pending, err := s.counters.PendingSync(ctx)
	if err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	if pending != "" {
		if err := s.finish(ctx, conn.Conn(), pending); err != nil {
			return err
		}
	}
	run := newRunID()
	period := s.now().UTC().Truncate(s.cfg.Period)
	if err := s.counters.BeginSync(ctx, run, period); err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	if err := s.step("moving"); err != nil {
		return err
	}
	if _, err := s.counters.MoveToSync(ctx, run); err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	return s.finish(ctx, conn.Conn(), run)
}

// finish commits run's pending counts (once, whatever happened before)
// and deletes them from Redis.
func (s *Syncer) finish(ctx context.Context, conn *pgx.Conn, run string) error {
	period, counts, err := s.counters.SealSync(ctx, run)
	if err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	if err := s.step("sealed"); err != nil {
		return err
	}
	ids := make([]string, 0, len(counts))
	ns := make([]int64, 0, len(counts))
	var total int64
	for id, n := range counts {
		ids = append(ids, id)
		ns = append(ns, n)
		total += n
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO access_sync_runs (run_id, period_start, files, downloads)
			VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING`, run, period, len(ids), total)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			ids = nil // committed before a crash: replaying adds nothing
			return nil
		}
		if err := s.step("committing"); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO file_access_counts (file_id, period_start, downloads)
			SELECT f, $3, n FROM unnest($1::text[], $2::bigint[]) AS t(f, n)
			ON CONFLICT (file_id, period_start) DO UPDATE
			SET downloads = file_access_counts.downloads + EXCLUDED.downloads`, ids, ns, period)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalogdb: sync commit: %w", err)
	}
	if ids != nil { // counted once, when committed
		s.rows.Add(int64(len(ids)))
		s.downloads.Add(total)
	}
	if err := s.step("committed"); err != nil {
		return err
	}
	if err := s.counters.FinishSync(ctx, run); err != nil {
		return fmt.Errorf("catalogdb: sync: %w", err)
	}
	s.runs.Add(1)
	s.lastOK.Store(s.now().Unix())
	return nil
}

func (s *Syncer) step(stage string) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(stage)
}

func newRunID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SyncedTotal returns the downloads of fileID committed to PostgreSQL, all
// periods together.
func (st *Store) SyncedTotal(ctx context.Context, fileID string) (int64, error) {
	var n int64
	err := st.pool.QueryRow(ctx, `SELECT coalesce(sum(downloads), 0)::bigint FROM file_access_counts WHERE file_id = $1`, fileID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("catalogdb: synced total %q: %w", fileID, err)
	}
	return n, nil
}
