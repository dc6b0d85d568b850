package stats

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Status is the state of a download task.
type Status string

// Task statuses, as stored in the task hash and published.
const (
	// StatusPending: a transfer has started (or a backend has issued the
	// link and written the hash itself) and no byte has been delivered yet.
	// It is only written when the hash does not exist yet.
	StatusPending Status = "PENDING"
	// StatusProgressing: bytes are being delivered, or a partial download
	// ended without error and without covering the whole file.
	StatusProgressing Status = "PROGRESSING"
	// StatusCompleted: every byte of the file has been delivered to the
	// token at least once. It is final: published once, never left.
	StatusCompleted Status = "COMPLETED"
	// StatusAborted: a transfer ended with an error, the file is not
	// complete, and no other transfer of the task is in progress. A later
	// transfer (a resume) moves the task back to PROGRESSING.
	StatusAborted Status = "ABORTED"
)

// TaskID identifies the download task of one token and one file: the
// lowercase hex of the first 16 bytes of
// SHA-256("task" 0x00 token 0x00 fileID), 32 characters. Backends compute
// it the same way to find download:task:<TaskID>; the token itself never
// reaches Redis or the logs.
func TaskID(token, fileID string) string {
	var buf [256]byte
	b := append(buf[:0], "task\x00"...)
	b = append(b, token...)
	b = append(b, 0)
	b = append(b, fileID...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// TransferInfo describes one response body about to be sent.
type TransferInfo struct {
	Token       string    // the download token; only TaskID(Token, FileID) is kept
	FileID      string    // the file's id, as in Access
	UserID      string    // the token's user, for the log and the task hash
	Route       string    // the proxy route, for the log
	ClientIP    string    // for the log
	CacheStatus string    // HIT, MISS, ..., for the log
	Off         int64     // first byte of the file this response carries; -1 with Parts
	N           int64     // bytes of the file this response carries
	Total       int64     // size of the whole file
	Start       time.Time // when the request arrived; zero = now
	// Parts, for a multipart/byteranges response, are the file's ranges
	// {off, len} in the order its parts carry them; Off is then -1 and N
	// their total. Delivered then counts file bytes only (never the part
	// headers), and the first d of them lie in the first ranges in order.
	// The slice must not change after StartTransfer.
	Parts [][2]int64
}

// Transfer tracks one response body. The proxy calls Delivered as bytes
// reach the client and Finish once at the end. A nil *Transfer is valid and
// does nothing. The strings of TransferInfo must not alias reused buffers.
type Transfer struct {
	r         *Recorder
	t         *task // nil after Close: the transfer records nothing
	info      TransferInfo
	start     time.Time
	step      int64 // bytes between syncs: 5% of the file, at least 1 MiB
	delivered atomic.Int64
	mark      atomic.Int64 // Delivered syncs once delivered reaches it
	finishing atomic.Bool  // Finish has been called
	finished  atomic.Bool  // Finish has folded the bytes in; set under task.mu
	logOnly   bool         // no token, so no task: only the log entry is kept
}

// taskKey finds a task in memory: two independent seeded hashes of token
// and file id (128 bits, so distinct tasks do not meet). It costs a few
// nanoseconds where TaskID's SHA-256 and hex cost hundreds and allocate;
// TaskID is computed once, when the task is created.
type taskKey struct{ a, b uint64 }

// task is the in-memory state of one download task on this node.
type task struct {
	key                taskKey
	id, fileID, userID string

	// Guarded by Recorder.tasksMu.
	lastUse time.Time
	elem    *listElem

	active atomic.Int32 // transfers in progress; incremented under tasksMu

	mu        sync.Mutex
	total     int64
	got       spans  // distinct bytes delivered
	status    Status // current status
	abortSeen bool   // a transfer failed since the task was last idle
	sent      Status // status last handed to the writer; "" = must write
	sentBytes int64
	sentAt    time.Time
}

// update is one write of a task's state, queued for the writer.
type update struct {
	t      *task
	status Status
	bytes  int64
	total  int64
}

// StartTransfer begins tracking a response carrying [Off, Off+N) of a file
// of Total bytes (or the ranges of Parts) for a token. It only touches memory. A transfer without a
// token has no task (a task is a token's download): it gets only its log
// entry, and with the log disabled StartTransfer returns nil.
func (r *Recorder) StartTransfer(info TransferInfo) *Transfer {
	if info.Token == "" && r.cfg.DisableLog {
		return nil
	}
	tr := &Transfer{r: r, info: info, start: info.Start}
	tr.info.Token = ""
	var now time.Time
	if info.Token != "" || tr.start.IsZero() { // a log-only transfer needs no clock
		now = r.now()
	}
	if tr.start.IsZero() {
		tr.start = now
	}
	tr.info.Total = max(info.Total, 0)
	switch {
	case len(info.Parts) > 0:
		tr.info.Off, tr.info.N = -1, 0
		for _, p := range info.Parts {
			tr.info.N += max(p[1], 0)
		}
	case info.Off < 0: // no known range: nothing can be recorded
		tr.info.N = 0
	default:
		tr.info.N = max(min(info.N, tr.info.Total-info.Off), 0)
	}
	// Below 1 MiB steps a sync (a lock and a clock read) would cost more
	// than the progress it reports: such bytes arrive within milliseconds.
	tr.step = max(tr.info.Total/20, 1<<20)
	if r.closed.Load() {
		return tr
	}
	if info.Token == "" {
		tr.logOnly = true
		return tr
	}
	t := r.acquireTask(r.taskKey(info.Token, info.FileID), info.Token, &tr.info, now)
	tr.t = t
	tr.mark.Store(tr.step)

	r.activeMu.Lock()
	r.active[tr] = struct{}{}
	r.activeMu.Unlock()

	t.mu.Lock()
	if t.total != tr.info.Total { // a new version of the file: start over
		t.total, t.got, t.status, t.sent = tr.info.Total, spans{}, StatusPending, ""
	}
	if t.active.Load() == 1 {
		t.abortSeen = false
	}
	if t.status == StatusAborted {
		t.status = StatusProgressing
	}
	u, ok := t.updateLocked(now, r.cfg.ProgressInterval, false)
	t.mu.Unlock()
	r.send(u, ok)
	return tr
}

// Delivered adds n to the bytes of this response written to the client.
// It costs two atomic operations, except every 5% of the file (at least
// 1 MiB), when it folds the bytes into the task (one short lock) and may
// queue a write.
func (tr *Transfer) Delivered(n int64) {
	if tr == nil || n <= 0 {
		return
	}
	if tr.t == nil {
		if tr.logOnly {
			tr.delivered.Add(n)
		}
		return
	}
	if tr.delivered.Add(n) >= tr.mark.Load() {
		tr.sync(tr.r.now(), false)
	}
}

// sync folds the bytes delivered so far into the task and queues a write
// if one is due (or, with force, if anything is unwritten).
func (tr *Transfer) sync(now time.Time, force bool) {
	d := min(tr.delivered.Load(), tr.info.N)
	t := tr.t
	t.mu.Lock()
	if tr.finished.Load() { // a sweep racing Finish: Finish has the last word
		t.mu.Unlock()
		return
	}
	tr.foldLocked(d)
	t.advanceLocked()
	u, ok := t.updateLocked(now, tr.r.cfg.ProgressInterval, force)
	tr.mark.Store(tr.delivered.Load() + tr.step)
	t.mu.Unlock()
	tr.r.send(u, ok)
}

// Finish ends the transfer: err nil means the response was sent whole,
// non-nil that it was cut (client gone, origin failure). It folds the
// delivered bytes into the task, may queue a status change, and queues the
// download log entry. Only the first call counts.
func (tr *Transfer) Finish(err error) {
	if tr == nil || (tr.t == nil && !tr.logOnly) || !tr.finishing.CompareAndSwap(false, true) {
		return
	}
	r, t := tr.r, tr.t
	now := r.now()
	if t == nil {
		r.enqueueLog(tr.logEntry(now, "", err))
		return
	}
	r.activeMu.Lock()
	delete(r.active, tr)
	r.activeMu.Unlock()

	t.mu.Lock()
	tr.finished.Store(true) // under t.mu, so no sync of tr follows
	tr.foldLocked(min(tr.delivered.Load(), tr.info.N))
	left := t.active.Add(-1)
	if err != nil {
		t.abortSeen = true
	}
	t.advanceLocked()
	if t.status != StatusCompleted {
		switch {
		case t.total == 0 && err == nil:
			t.status = StatusCompleted
		case left == 0 && t.abortSeen:
			t.status = StatusAborted
		}
	}
	u, ok := t.updateLocked(now, r.cfg.ProgressInterval, false)
	// Bytes not yet due a write would be lost: no transfer of the task may
	// follow to carry them, and the sweep only syncs open transfers. The
	// next sweep writes them instead.
	pending := !ok && t.got.total() != t.sentBytes
	t.mu.Unlock()
	r.send(u, ok)
	if pending {
		r.queueDirty(t)
	}
	r.touch(t, now)

	r.enqueueLog(tr.logEntry(now, t.id, err))
}

// foldLocked adds the first d file bytes of the response to the task's
// spans: [Off, Off+d), or the first d bytes of Parts in order. Only bytes
// that reached the client are added, so COMPLETED means every byte of the
// file was delivered at least once. t.mu must be held.
func (tr *Transfer) foldLocked(d int64) {
	if len(tr.info.Parts) == 0 {
		tr.t.got.insert(tr.info.Off, tr.info.Off+d)
		return
	}
	for _, p := range tr.info.Parts {
		if d <= 0 {
			return
		}
		k := min(max(p[1], 0), d)
		// A range reaching outside the file is a caller's bug: its bytes
		// still count toward d, but only those inside the file are kept.
		tr.t.got.insert(max(p[0], 0), min(p[0]+k, tr.info.Total))
		d -= k
	}
}

// logEntry is the download log entry of the transfer finished at now.
func (tr *Transfer) logEntry(now time.Time, taskID string, err error) logEntry {
	return logEntry{
		at: now, info: &tr.info, taskID: taskID, bytes: tr.delivered.Load(),
		failed: err != nil, durMS: now.Sub(tr.start).Milliseconds(),
	}
}

// advanceLocked applies the status changes that follow from the bytes.
// Only StartTransfer moves an ABORTED task back to PROGRESSING: bytes of a
// transfer that has already ended must not.
func (t *task) advanceLocked() {
	switch {
	case t.status == StatusCompleted:
	case t.total > 0 && t.got.total() >= t.total:
		t.status = StatusCompleted
	case t.got.total() > 0 && t.status == StatusPending:
		t.status = StatusProgressing
	}
}

// updateLocked decides whether the task is due a write and, if so, marks
// it written and returns the update. A status change is always due. More
// bytes are due interval after the last write, or after interval/10 once
// they add up to 5% of the file: a slow download is written every
// interval, a fast one at 5% steps but at most ten times per interval, so
// a download done in milliseconds costs two writes (first and last), not
// twenty. force makes any unwritten change due.
func (t *task) updateLocked(now time.Time, interval time.Duration, force bool) (update, bool) {
	cur := t.got.total()
	if t.status == t.sent {
		if cur == t.sentBytes || t.sent == StatusCompleted {
			return update{}, false
		}
		since := now.Sub(t.sentAt)
		due := since >= interval || (cur-t.sentBytes >= t.total/20 && since >= interval/10)
		if !force && !due {
			return update{}, false
		}
	}
	t.sent, t.sentBytes, t.sentAt = t.status, cur, now
	return update{t: t, status: t.status, bytes: cur, total: t.total}, true
}

// send queues u for the writer without waiting. When the queue is full
// the update is dropped and counted, and the task is marked for the next
// sweep, so a status change is delayed rather than lost.
func (r *Recorder) send(u update, ok bool) {
	if !ok || r.drained.Load() { // nobody would write it

		return
	}
	select {
	case r.updates <- u:
	default:
		r.m.progressDropped.Add(1)
		r.markDirty(u.t)
	}
}

// markDirty makes the sweep write t again: its last update did not reach
// Redis. The dirty set is bounded by MaxTasks; past it the write is lost
// until the task changes again.
func (r *Recorder) markDirty(t *task) {
	t.mu.Lock()
	t.sent = ""
	t.mu.Unlock()
	r.queueDirty(t)
}

// queueDirty adds t to the tasks the next sweep writes, within MaxTasks.
func (r *Recorder) queueDirty(t *task) {
	r.dirtyMu.Lock()
	if len(r.dirty) < r.cfg.MaxTasks {
		r.dirty[t] = struct{}{}
	}
	r.dirtyMu.Unlock()
}

// taskKey returns the key of the task of token and fileID.
func (r *Recorder) taskKey(token, fileID string) taskKey {
	return taskKey{hashTask(r.taskSeeds[0], token, fileID), hashTask(r.taskSeeds[1], token, fileID)}
}

func hashTask(seed maphash.Seed, token, fileID string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(token)
	h.WriteByte(0)
	h.WriteString(fileID)
	return h.Sum64()
}

// acquireTask returns the task with key, creating it if needed, counts one
// more transfer on it and marks it used.
func (r *Recorder) acquireTask(key taskKey, token string, info *TransferInfo, now time.Time) *task {
	r.tasksMu.Lock()
	defer r.tasksMu.Unlock()
	t := r.tasks[key]
	if t == nil {
		t = &task{key: key, id: TaskID(token, info.FileID), fileID: info.FileID, userID: info.UserID,
			total: info.Total, status: StatusPending}
		r.tasks[key] = t
		t.elem = r.lru.pushFront(t)
	} else {
		r.lru.moveToFront(t.elem)
	}
	t.lastUse = now
	t.active.Add(1)
	r.evictOverLocked()
	return t
}

// touch marks t used, unless it has been evicted meanwhile.
func (r *Recorder) touch(t *task, now time.Time) {
	r.tasksMu.Lock()
	if r.tasks[t.key] == t {
		t.lastUse = now
		r.lru.moveToFront(t.elem)
	}
	r.tasksMu.Unlock()
}

// evictOverLocked evicts least recently used idle tasks while there are
// more than MaxTasks. Tasks with transfers in progress are moved to the
// front instead; the scan is bounded so one call stays cheap.
func (r *Recorder) evictOverLocked() {
	for range 16 {
		if len(r.tasks) <= r.cfg.MaxTasks {
			return
		}
		t := r.lru.back()
		if t == nil {
			return
		}
		if t.active.Load() > 0 {
			r.lru.moveToFront(t.elem)
			continue
		}
		r.removeLocked(t)
	}
}

// evictIdleLocked evicts tasks unused for TaskIdle and without transfers.
func (r *Recorder) evictIdleLocked(now time.Time) {
	for n := len(r.tasks); n > 0; n-- {
		t := r.lru.back()
		if t == nil || now.Sub(t.lastUse) < r.cfg.TaskIdle {
			return
		}
		if t.active.Load() > 0 {
			t.lastUse = now
			r.lru.moveToFront(t.elem)
			continue
		}
		r.removeLocked(t)
	}
}

func (r *Recorder) removeLocked(t *task) {
	r.lru.remove(t.elem)
	delete(r.tasks, t.key)
	r.m.tasksEvicted.Add(1)
}

// sweep writes the progress of open transfers that is due (slow transfers
// never reach Delivered's 5% mark), retries tasks whose write was lost, and
// evicts idle tasks. final forces every unwritten change out (Close).
func (r *Recorder) sweep(now time.Time, final bool) {
	r.activeMu.Lock()
	open := make([]*Transfer, 0, len(r.active))
	for tr := range r.active {
		open = append(open, tr)
	}
	r.activeMu.Unlock()
	for _, tr := range open {
		tr.sync(now, final)
	}

	r.dirtyMu.Lock()
	dirty := r.dirty
	r.dirty = make(map[*task]struct{})
	r.dirtyMu.Unlock()
	for t := range dirty {
		t.mu.Lock()
		u, ok := t.updateLocked(now, r.cfg.ProgressInterval, true)
		t.mu.Unlock()
		r.send(u, ok)
	}

	r.tasksMu.Lock()
	r.evictIdleLocked(now)
	r.tasksMu.Unlock()
}
