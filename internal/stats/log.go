package stats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// logEntry is one finished transfer waiting to be XADDed.
type logEntry struct {
	at     time.Time
	info   *TransferInfo // the Transfer's copy, never written after Finish
	taskID string
	bytes  int64
	durMS  int64 // duration in milliseconds
	failed bool  // status "aborted", else "completed"
}

// logChunk bounds the entries one script run XADDs. A script blocks Redis
// while it runs (about 2 µs per entry), so a batch is cut into runs of
// well under a millisecond, pipelined, and other clients are served
// between them.
const logChunk = 128

// logArgsPerEntry is the number of ARGV values per entry of logScript.
const logArgsPerEntry = 12

// logScript XADDs a chunk of entries in one command. Per entry, a pipeline
// of XADDs costs the client a command object, its arguments boxed one by
// one, and a parsed reply; the script costs one command and one reply per
// chunk, so the log writer's CPU stays a small fraction of the transfers
// it records. Each entry is added with its own XADD MAXLEN ~, exactly as a
// pipelined XADD would, and an entry that fails does not stop the others.
//
// KEYS[1] the stream
// ARGV[1] MAXLEN, ARGV[2] node, then per entry: time, task_id, user_id,
// file_id, route, off, len, bytes, status, duration_ms, cache, client_ip
// Returns {entries written, the first error or ""}.
var logScript = redis.NewScript(`
local n, first = 0, ''
for i = 3, #ARGV, 12 do
  local r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'time', ARGV[i], 'node', ARGV[2], 'task_id', ARGV[i+1], 'user_id', ARGV[i+2],
    'file_id', ARGV[i+3], 'route', ARGV[i+4], 'off', ARGV[i+5], 'len', ARGV[i+6],
    'bytes', ARGV[i+7], 'status', ARGV[i+8], 'duration_ms', ARGV[i+9],
    'cache', ARGV[i+10], 'client_ip', ARGV[i+11])
  if type(r) == 'table' and r.err then
    if first == '' then first = r.err end
  else
    n = n + 1
  end
end
return {n, first}
`)

// Log statuses, boxed once: a constant string in an interface costs no
// allocation.
var (
	logCompleted any = "completed"
	logAborted   any = "aborted"
)

// logBuf holds the arguments of one batch, reused from batch to batch by
// one writer so a batch allocates a few objects, not a few per entry.
// Values point into the batch (strings as *string, numbers as *int64,
// which go-redis writes without boxing); only the times are formatted,
// into one string per batch.
type logBuf struct {
	args  []any
	text  []byte
	ends  []int
	times []string
	keys  []string
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

// drainLog writes what is queued, for Close.
func (r *Recorder) drainLog(ctx context.Context) error {
	batch := make([]logEntry, 0, writeBatch)
	var buf logBuf
	for {
		batch = fillBatch(batch[:0], r.entries)
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			r.m.logDropped.Add(int64(len(batch) + len(r.entries)))
			return wrap("close: download log", err)
		}
		if err := r.writeLog(ctx, &buf, batch); err != nil {
			return err
		}
	}
}

// build fills b with the script arguments of batch, chunk after chunk.
// The values point into batch and r.cfg, which must not change until the
// batch is written.
func (b *logBuf) build(r *Recorder, batch []logEntry) {
	b.text, b.ends = b.text[:0], b.ends[:0]
	for i := range batch {
		b.text = batch[i].at.UTC().AppendFormat(b.text, "2006-01-02T15:04:05.000Z07:00")
		b.ends = append(b.ends, len(b.text))
	}
	all := string(b.text) // one allocation for the batch's times
	b.times = b.times[:0]
	start := 0
	for _, end := range b.ends {
		b.times = append(b.times, all[start:end])
		start = end
	}
	b.args = b.args[:0]
	for i := range batch {
		if i%logChunk == 0 {
			b.args = append(b.args, &r.cfg.LogMaxLen, &r.cfg.NodeID)
		}
		e := &batch[i]
		status := logCompleted
		if e.failed {
			status = logAborted
		}
		b.args = append(b.args, &b.times[i], &e.taskID, &e.info.UserID, &e.info.FileID,
			&e.info.Route, &e.info.Off, &e.info.N, &e.bytes, status, &e.durMS,
			&e.info.CacheStatus, &e.info.ClientIP)
	}
	if len(b.keys) == 0 {
		b.keys = []string{r.cfg.LogStream}
	}
}

// chunkArgs returns the arguments of chunk c (of logChunk entries).
func (b *logBuf) chunkArgs(c, entries int) []any {
	per := 2 + logChunk*logArgsPerEntry
	from := c * per
	n := min(entries-c*logChunk, logChunk)
	return b.args[from : from+2+n*logArgsPerEntry]
}

// writeLog XADDs batch with one script run per logChunk entries, in one
// pipeline. The log is best effort: entries that failed are dropped and
// counted, not retried, so an outage costs a bounded amount of memory.
// The fields are listed in the package doc.
func (r *Recorder) writeLog(ctx context.Context, b *logBuf, batch []logEntry) error {
	b.build(r, batch)
	chunks := (len(batch) + logChunk - 1) / logChunk
	written, err := r.runLog(ctx, b, len(batch), chunks)
	if err != nil && isNoScript(err) {
		// Redis restarted (or flushed its scripts): load and retry once.
		// Nothing was written: NOSCRIPT fails before the script runs.
		if lerr := logScript.Load(ctx, r.rdb).Err(); lerr == nil {
			written, err = r.runLog(ctx, b, len(batch), chunks)
		}
	}
	clear(b.args) // drop the pointers into batch
	clear(b.times)
	r.m.logWritten.Add(written)
	if err == nil {
		return nil
	}
	bad := int64(len(batch)) - written
	r.m.logDropped.Add(bad)
	r.m.logFailures.Add(1)
	r.log.Warn("stats: download log write failed; entries dropped", "dropped", bad, "err", err)
	return wrap("download log", err)
}

// runLog runs the script over every chunk in one pipeline and returns how
// many entries were written and the first error. A NOSCRIPT error is
// returned only if every chunk failed with it, so a retry writes nothing
// twice.
func (r *Recorder) runLog(ctx context.Context, b *logBuf, entries, chunks int) (int64, error) {
	var cmds [writeBatch/logChunk + 1]*redis.Cmd
	if chunks == 1 {
		cmds[0] = logScript.EvalSha(ctx, r.rdb, b.keys, b.chunkArgs(0, entries)...)
	} else {
		pipe := r.rdb.Pipeline()
		for c := range chunks {
			cmds[c] = logScript.EvalSha(ctx, pipe, b.keys, b.chunkArgs(c, entries)...)
		}
		pipe.Exec(ctx) // errors are read per command below
	}
	var written int64
	var first error
	noScript := 0
	for _, cmd := range cmds[:chunks] {
		res, err := cmd.Slice()
		if err == nil && len(res) == 2 {
			n, _ := res[0].(int64)
			written += n
			if msg, _ := res[1].(string); msg != "" {
				err = errors.New(msg)
			}
		} else if err == nil {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if err != nil && isNoScript(err) {
			noScript++
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if noScript > 0 && noScript < chunks {
		// Some chunks ran: a retry would write those twice.
		first = fmt.Errorf("script missing for some chunks: %w", first)
	}
	return written, first
}
