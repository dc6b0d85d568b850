package stats

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// logEntry is one finished transfer waiting to be XADDed.
type logEntry struct {
	at     time.Time
	info   *TransferInfo // the Transfer's copy, never written after Finish
	taskID string
	bytes  int64
	status string
	dur    time.Duration
}

// enqueueLog queues e without waiting; a full queue drops it and counts.
func (r *Recorder) enqueueLog(e logEntry) {
	if r.cfg.DisableLog || r.closed.Load() {
		return
	}
	select {
	case r.entries <- e:
	default:
		r.m.logDropped.Add(1)
	}
}

// logWriter XADDs queued entries in pipelined batches until Close.
func (r *Recorder) logWriter() {
	defer r.wg.Done()
	batch := make([]logEntry, 0, writeBatch)
	for {
		select {
		case <-r.stop:
			return
		case e := <-r.entries:
			batch = append(batch[:0], e)
			batch = fillBatch(batch, r.entries)
			ctx, cancel := r.batchCtx()
			r.writeLog(ctx, batch)
			cancel()
		}
	}
}

// drainLog writes what is queued, for Close.
func (r *Recorder) drainLog(ctx context.Context) error {
	batch := make([]logEntry, 0, writeBatch)
	for {
		batch = fillBatch(batch[:0], r.entries)
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			r.m.logDropped.Add(int64(len(batch) + len(r.entries)))
			return wrap("close: download log", err)
		}
		if err := r.writeLog(ctx, batch); err != nil {
			return err
		}
	}
}

// writeLog XADDs batch in one pipeline. The log is best effort: a failed
// batch is dropped and counted, not retried, so an outage costs a bounded
// amount of memory. The fields are listed in the package doc.
func (r *Recorder) writeLog(ctx context.Context, batch []logEntry) error {
	pipe := r.rdb.Pipeline()
	for _, e := range batch {
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: r.cfg.LogStream,
			MaxLen: r.cfg.LogMaxLen,
			Approx: true,
			Values: []any{
				"time", e.at.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				"node", r.cfg.NodeID,
				"task_id", e.taskID,
				"user_id", e.info.UserID,
				"file_id", e.info.FileID,
				"route", e.info.Route,
				"off", strconv.FormatInt(e.info.Off, 10),
				"len", strconv.FormatInt(e.info.N, 10),
				"bytes", strconv.FormatInt(e.bytes, 10),
				"status", e.status,
				"duration_ms", strconv.FormatInt(e.dur.Milliseconds(), 10),
				"cache", e.info.CacheStatus,
				"client_ip", e.info.ClientIP,
			},
		})
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		r.m.logWritten.Add(int64(len(batch)))
		return nil
	}
	var bad int64
	for _, c := range cmds {
		if c.Err() != nil {
			bad++
		}
	}
	if bad == 0 {
		bad = int64(len(batch))
	}
	r.m.logWritten.Add(int64(len(batch)) - bad)
	r.m.logDropped.Add(bad)
	r.m.logFailures.Add(1)
	r.log.Warn("stats: download log write failed; entries dropped", "dropped", bad, "err", err)
	return wrap("download log", err)
}
