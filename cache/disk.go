package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/edgeproxy/edgeproxy/cache/policy"
)

// diskTier keeps chunks as files under dir/<2 hex digits>/, one file per
// chunk (format in diskfile.go), within a byte budget; which chunks are
// written and which leave first is the policy's (diskpolicy.go).
//
// Writes are behind the serving path: fills enqueue chunks on a bounded
// queue that one goroutine drains, and a full queue drops the chunk rather
// than wait. Each file is written under dir/tmp and renamed into place, so
// a reader or a restart sees a complete file or none; a crash can still
// leave a short or torn file after the rename (there is no fsync), which the
// checksum catches on first read. Any I/O failure is counted and logged at
// most once per interval, and the request goes on from memory or origin.
//
// The index (which chunks exist, their sizes, eviction order) lives in
// memory and is rebuilt at start from file names and sizes alone, without
// opening the files; the order then follows file modification times. The rebuild
// runs in the background (1M files take seconds to list and lstat), so
// serving starts at once: until it ends, a chunk not yet indexed is a miss
// that goes to the origin (and is written again), and purges wait for it,
// since they must find files not yet indexed.
type diskTier struct {
	c      *Cache // counters, clock, logger
	dir    string
	tmpDir string
	budget int64

	queue       chan diskJob
	stop, done  chan struct{}
	beforeWrite func() // test hook run by the writer before each chunk
	midWrite    func() // test hook run between a file's header and its data

	sketch *policy.Sketch // chunk frequencies; nil under the lru policy

	mu       sync.Mutex
	index    *policy.Index[diskKey] // chunk -> file size, in the policy's eviction order
	objs     map[uint64]*diskObject // by keyHash
	used     int64                  // bytes of indexed files
	reserved int64                  // bytes being written
	evicted  []diskKey              // removed from the index, file still to delete
	closing  []*openChunk           // their open files, the table's reference still to drop

	errLog logLimiter
	gate   promoteGate // which disk hits are copied into memory (diskread.go)

	// Chunk files kept open for readers (diskfd.go), guarded by mu: files
	// by key, ring for CLOCK eviction (nil slots are free), hand its
	// position.
	files map[diskKey]*openChunk
	ring  []*openChunk
	hand  int

	// scanned is closed when the start-up scan has merged its files into
	// the index. Until then scanning is true and every key removed from
	// the index is remembered in gone, so the merge does not bring back a
	// file that was evicted, dropped as corrupt or purged meanwhile.
	scanned  chan struct{}
	scanning bool
	gone     map[diskKey]struct{}
}

// scanHook, when set by a test, runs between the scan's listing and its
// merge into the index.
var scanHook func()

// diskObject groups the chunk files of one object (all versions), so purges
// need not scan the index. bucket and key are known for objects written by
// this process and learnt from a file header on demand after a restart.
type diskObject struct {
	bucket, key string
	known       bool
	chunks      map[diskKey]struct{}
}

// diskJob is a chunk to write, or a flush marker (tests, Close).
type diskJob struct {
	ch      *chunk
	flushed chan struct{}
}

func openDisk(dir string, budget int64, queue int, c *Cache) (*diskTier, error) {
	d := &diskTier{
		c:      c,
		dir:    dir,
		tmpDir: filepath.Join(dir, "tmp"),
		budget: budget,
		queue:  make(chan diskJob, queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		objs:   make(map[uint64]*diskObject),

		scanned:  make(chan struct{}),
		scanning: true,
		gone:     make(map[diskKey]struct{}),
	}
	var err error
	d.index, err = d.newDiskIndex(policy.Kind(c.cfg.Policy))
	if err != nil {
		return nil, fmt.Errorf("cache: disk index: %w", err)
	}
	// Only a directory proven to be the cache's own may be cleaned below.
	if err := claimDiskDir(dir); err != nil {
		return nil, err
	}
	// Leftovers of writes interrupted by a crash.
	if err := os.RemoveAll(d.tmpDir); err != nil {
		return nil, fmt.Errorf("cache: disk dir: %w", err)
	}
	if err := os.Mkdir(d.tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: disk dir: %w", err)
	}
	go func() {
		defer close(d.scanned)
		if err := d.scan(); err != nil {
			d.ioError("scan", err)
		}
	}()
	go d.run()
	return d, nil
}

// scanWorkers is how many subdirectories are listed at once: the scan is
// bound by directory reads and lstat calls, which overlap well even on few
// cores.
const scanWorkers = 8

// foundFile is a chunk file seen by scan.
type foundFile struct {
	k     diskKey
	size  int64
	mtime int64
}

// scan rebuilds the index from the directory: names give identities, sizes
// come from the directory entries, modification times give the LRU order.
// Files that are not chunk files of ours are deleted. Chunks written while
// it ran stay newer than every file it found; on an error it still indexes
// what it found and stops remembering removals.
func (d *diskTier) scan() error {
	var (
		mu       sync.Mutex
		all      []foundFile
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range scanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				found, err := d.scanSubdir(i)
				mu.Lock()
				all = append(all, found...)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 256 {
		next <- i
	}
	close(next)
	wg.Wait()
	if scanHook != nil {
		scanHook()
	}
	slices.SortFunc(all, func(a, b foundFile) int {
		switch {
		case a.mtime < b.mtime:
			return -1
		case a.mtime > b.mtime:
			return 1
		}
		return 0
	})
	d.mu.Lock()
	// Files found are older than any chunk written during the scan: each
	// goes in as the next to leave, newest first.
	for _, f := range slices.Backward(all) {
		if _, ok := d.gone[f.k]; ok || d.index.Contains(f.k) {
			continue
		}
		d.indexLocked(f.k, f.size, "", "", false, true)
		d.seed(f.k)
	}
	d.scanning, d.gone = false, nil
	d.evictLocked()
	victims := d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)
	return firstErr
}

// waitScan blocks until the start-up scan has ended.
func (d *diskTier) waitScan() { <-d.scanned }

// scanSubdir lists subdirectory i (of 256) and deletes what does not belong.
func (d *diskTier) scanSubdir(i int) ([]foundFile, error) {
	sub := diskKey{kh: uint64(i) << 56}.subdir()
	path := filepath.Join(d.dir, sub)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // created by the first write that needs it
	}
	if err != nil {
		return nil, fmt.Errorf("cache: scan disk dir: %w", err)
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("cache: scan %q: %w", path, err)
	}
	found := make([]foundFile, 0, len(ents))
	for _, e := range ents {
		k, ok := parseFileName(e.Name())
		if !ok || !e.Type().IsRegular() || k.subdir() != sub {
			if e.Type().IsRegular() && isV1FileName(e.Name()) {
				d.c.st.diskOldFormat.Add(1) // never read: the format changed
			}
			os.RemoveAll(filepath.Join(path, e.Name()))
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // vanished meanwhile
		}
		found = append(found, foundFile{k, info.Size(), info.ModTime().UnixNano()})
	}
	return found, nil
}

func (d *diskTier) path(k diskKey) string {
	return filepath.Join(d.dir, k.subdir(), k.fileName())
}

// addLocked indexes a file and evicts to stay within the budget.
func (d *diskTier) addLocked(k diskKey, size int64, bucket, key string, known bool) {
	d.indexLocked(k, size, bucket, key, known, false)
	d.evictLocked()
}

// indexLocked indexes a file as the newest entry, or as the next to leave
// when oldest is set (files found by the start-up scan, k not indexed).
func (d *diskTier) indexLocked(k diskKey, size int64, bucket, key string, known, oldest bool) {
	if old, ok := d.index.Peek(k); ok {
		d.used -= old
	}
	if oldest {
		d.index.AddOldest(k, size)
	} else {
		d.index.Add(k, size)
	}
	d.used += size
	obj := d.objs[k.kh]
	if obj == nil {
		obj = &diskObject{chunks: make(map[diskKey]struct{})}
		d.objs[k.kh] = obj
	}
	if known && !obj.known {
		obj.bucket, obj.key, obj.known = bucket, key, true
	}
	obj.chunks[k] = struct{}{}
}

// evictLocked removes chunks in the policy's order until the indexed and
// reserved bytes fit the budget.
func (d *diskTier) evictLocked() {
	for d.used+d.reserved > d.budget && d.index.Len() > 0 {
		d.index.RemoveOldest()
	}
}

// onEvict is the index's callback for every removal.
func (d *diskTier) onEvict(k diskKey, size int64) {
	d.used -= size
	if obj := d.objs[k.kh]; obj != nil {
		delete(obj.chunks, k)
		if len(obj.chunks) == 0 {
			delete(d.objs, k.kh)
		}
	}
	d.evicted = append(d.evicted, k)
	d.closeOpenLocked(k)
	if d.scanning {
		d.gone[k] = struct{}{}
	}
}

// evictedChunks are chunks removed from the index under d.mu, whose files
// are deleted, and whose open files let go of, after it (removeFiles).
type evictedChunks struct {
	keys  []diskKey
	files []*openChunk
}

func (d *diskTier) takeEvictedLocked() evictedChunks {
	v := evictedChunks{d.evicted, d.closing}
	d.evicted, d.closing = nil, nil
	return v
}

// removeFiles deletes files already removed from the index, and drops the
// open-file table's references to them. It runs without d.mu: a reader
// that looked a file up just before may find it gone, which is a miss; and
// the last reference closes and unmaps the file, and an munmap of touched
// pages flushes every core's TLB, which no disk hit should wait for.
func (d *diskTier) removeFiles(v evictedChunks) {
	for _, oc := range v.files {
		oc.release()
	}
	for _, k := range v.keys {
		if err := os.Remove(d.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.ioError("remove", err)
		}
	}
}

// drop removes one chunk from the index and deletes its file.
func (d *diskTier) drop(k diskKey) {
	d.mu.Lock()
	d.index.Remove(k)
	victims := d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)
}

func (d *diskTier) ioError(op string, err error) {
	d.c.st.diskErrors.Add(1)
	d.c.logLimited(&d.errLog, "disk tier "+op+" failed; serving from memory and origin", "dir", d.dir, "err", err)
}

// has reports whether chunk idx of id is indexed, without touching the LRU
// order.
func (d *diskTier) has(id *objectID, idx int64) bool {
	d.mu.Lock()
	ok := d.index.Contains(diskKey{id.kh, id.eh, idx})
	d.mu.Unlock()
	return ok
}

func (d *diskTier) corrupt(k diskKey, err error) {
	d.c.st.diskCorrupt.Add(1)
	d.c.logLimited(&d.errLog, "deleting corrupt chunk file", "file", d.path(k), "err", err)
	d.drop(k)
}

// enqueue hands a chunk to the writer if the policy admits it (ahead: see
// admit), or drops it if the queue is full.
func (d *diskTier) enqueue(ch *chunk, ahead bool) {
	if !d.admit(ch, ahead) {
		d.c.st.diskRejected.Add(1)
		return
	}
	select {
	case d.queue <- diskJob{ch: ch}:
	default:
		d.c.st.diskDropped.Add(1)
	}
}

// flush waits until every chunk enqueued before it has been handled.
func (d *diskTier) flush() {
	j := diskJob{flushed: make(chan struct{})}
	d.queue <- j
	<-j.flushed
}

func (d *diskTier) close() {
	d.waitScan()
	close(d.stop)
	<-d.done
	d.closeAllOpen()
}

// run is the writer goroutine. On stop it finishes what is queued.
func (d *diskTier) run() {
	defer close(d.done)
	for {
		select {
		case j := <-d.queue:
			d.handle(j)
		case <-d.stop:
			for {
				select {
				case j := <-d.queue:
					d.handle(j)
				default:
					return
				}
			}
		}
	}
}

func (d *diskTier) handle(j diskJob) {
	if j.flushed != nil {
		close(j.flushed)
		return
	}
	if d.beforeWrite != nil {
		d.beforeWrite()
	}
	d.write(j.ch)
}

// write stores one chunk file unless it is already there or larger than
// the whole budget. Room is reserved (evicting) before the write so the
// directory never holds more than the budget plus one chunk.
func (d *diskTier) write(ch *chunk) {
	k := diskKey{ch.id.kh, ch.id.eh, ch.idx}
	hdr, err := encodeHeader(ch)
	if err != nil {
		return // an identity too long for the format is simply not cached on disk
	}
	size := int64(len(hdr) + len(ch.data))
	d.mu.Lock()
	if d.index.Contains(k) || size > d.budget {
		d.mu.Unlock()
		return
	}
	d.reserved += size
	d.evictLocked()
	victims := d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)

	err = d.writeFile(k, hdr, ch.data)

	d.mu.Lock()
	d.reserved -= size
	if err == nil {
		d.addLocked(k, size, ch.id.bucket, ch.id.key, true)
	}
	victims = d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)
	if err != nil {
		d.ioError("write", err)
		return
	}
	d.c.st.diskWrites.Add(1)
}

// writeFile writes a chunk file to tmp and renames it into place.
func (d *diskTier) writeFile(k diskKey, hdr, data []byte) error {
	f, err := os.CreateTemp(d.tmpDir, "chunk-*")
	if err != nil {
		return fmt.Errorf("cache: create chunk file: %w", err)
	}
	_, err = f.Write(hdr)
	if err == nil && d.midWrite != nil {
		d.midWrite()
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	path := d.path(k)
	if err == nil {
		err = os.Rename(f.Name(), path)
		if errors.Is(err, fs.ErrNotExist) { // first file of this subdirectory
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.Rename(f.Name(), path)
			}
		}
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("cache: write chunk %q: %w", path, err)
	}
	return nil
}

// removeObject deletes every chunk of every version of the object with
// keyHash kh and returns how many there were.
func (d *diskTier) removeObject(kh uint64) int {
	return d.removeWhere(kh, func(diskKey) bool { return true })
}

// removeVersion deletes the chunks of one version.
func (d *diskTier) removeVersion(kh, eh uint64) int {
	return d.removeWhere(kh, func(k diskKey) bool { return k.eh == eh })
}

func (d *diskTier) removeWhere(kh uint64, match func(diskKey) bool) int {
	d.waitScan() // files not yet indexed must go too
	d.mu.Lock()
	n := 0
	if obj := d.objs[kh]; obj != nil {
		for k := range obj.chunks {
			if match(k) {
				d.index.Remove(k)
				n++
			}
		}
	}
	victims := d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)
	return n
}

// removePrefix deletes the chunks of every object of bucket whose key
// starts with prefix and returns those keys. Objects indexed by a scan have
// no known key yet: one chunk header of each is read first.
func (d *diskTier) removePrefix(bucket, prefix string) []string {
	d.waitScan()
	d.mu.Lock()
	var unknown []diskKey
	for _, obj := range d.objs {
		if !obj.known {
			for k := range obj.chunks {
				unknown = append(unknown, k)
				break
			}
		}
	}
	d.mu.Unlock()
	for _, k := range unknown {
		b, key, ok := d.readIdentity(k)
		if !ok {
			continue
		}
		d.mu.Lock()
		if obj := d.objs[k.kh]; obj != nil && !obj.known {
			obj.bucket, obj.key, obj.known = b, key, true
		}
		d.mu.Unlock()
	}

	d.mu.Lock()
	var keys []string
	for _, obj := range d.objs {
		if obj.known && obj.bucket == bucket && strings.HasPrefix(obj.key, prefix) {
			keys = append(keys, obj.key)
			for k := range obj.chunks {
				d.index.Remove(k)
			}
		}
	}
	victims := d.takeEvictedLocked()
	d.mu.Unlock()
	d.removeFiles(victims)
	return keys
}

// readIdentity reads the bucket and key from a chunk file's header.
func (d *diskTier) readIdentity(k diskKey) (bucket, key string, ok bool) {
	f, err := os.Open(d.path(k))
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	b := make([]byte, fileHeaderLen+2*maxIdentLen)
	n, _ := io.ReadFull(f, b)
	return readIdentity(b[:n])
}

// size returns the indexed bytes and chunk count.
func (d *diskTier) size() (bytes, chunks int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used, int64(d.index.Len())
}
