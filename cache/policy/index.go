package policy

import "fmt"

// Kind names a replacement policy.
type Kind string

// The policies an Index implements.
const (
	// TinyLFU admits a new entry only if the sketch says it is seen more
	// often than the entries it would evict, and keeps admitted entries in
	// a segmented LRU (20% probation, 80% protected by bytes). With the
	// memory tier in front acting as W-TinyLFU's window, this is W-TinyLFU
	// (Caffeine's design) laid over two tiers.
	TinyLFU Kind = "tinylfu"
	// LRU admits everything and evicts the least recently used entry: the
	// behaviour of most CDN caches (nginx included), kept for comparison.
	LRU Kind = "lru"
)

// ParseKind accepts "tinylfu" and "lru"; "" means TinyLFU.
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case "", TinyLFU:
		return TinyLFU, nil
	case LRU:
		return LRU, nil
	}
	return "", fmt.Errorf("policy: unknown policy %q (want tinylfu or lru)", s)
}

// protectedShare is the protected segment's share of the budget, in
// percent: Caffeine's 80%.
const protectedShare = 80

// sampleFactor sets the sketch's halving period to this many additions per
// indexed entry. TinyLFU's paper and Caffeine use 10; on the simulator 10
// gave 0.633 on a Zipf(0.9) trace against 0.645 with 16 (Belady: 0.741),
// and 20 or more gained little and recovered more slowly from a shifted
// popularity (docs/design.md has the figures).
const sampleFactor = 16

// Index tracks entries of a byte-budgeted store and decides admission and
// eviction order. It never evicts by itself: the owner asks Admit before
// storing, then calls Add, and calls RemoveOldest while over budget, so
// that it controls when files are deleted. Its method set mirrors
// hashicorp/golang-lru's simplelru so the two are interchangeable.
//
// An Index is not safe for concurrent use; its Sketch is.
type Index[K comparable] struct {
	kind    Kind
	hash    func(K) uint64
	sketch  *Sketch // nil for LRU
	onEvict func(K, int64)
	budget  int64

	items                map[K]*entry[K]
	probation, protected list[K] // LRU: everything is in probation
	protectedBytes       int64
	shift                shiftWatch
}

type entry[K comparable] struct {
	key        K
	size       int64
	protected  bool
	prev, next *entry[K]
}

// New returns an empty index for a store of budget bytes. For TinyLFU,
// sketch supplies frequencies (the owner feeds it every access, hits in
// tiers this index does not see included) and hash maps a key to the
// sketch's key. onEvict, if not nil, is called for every entry that leaves
// through Remove or RemoveOldest.
func New[K comparable](kind Kind, budget int64, sketch *Sketch, hash func(K) uint64, onEvict func(K, int64)) (*Index[K], error) {
	switch {
	case kind != TinyLFU && kind != LRU:
		return nil, fmt.Errorf("policy: unknown policy %q", kind)
	case kind == TinyLFU && (sketch == nil || hash == nil):
		return nil, fmt.Errorf("policy: tinylfu needs a sketch and a hash")
	case budget <= 0:
		return nil, fmt.Errorf("policy: budget %d must be positive", budget)
	}
	ix := &Index[K]{kind: kind, hash: hash, onEvict: onEvict, budget: budget, items: make(map[K]*entry[K])}
	if kind == TinyLFU {
		ix.sketch = sketch
	}
	ix.probation.init()
	ix.protected.init()
	return ix, nil
}

// Kind reports the index's policy.
func (ix *Index[K]) Kind() Kind { return ix.kind }

// Len returns the number of entries.
func (ix *Index[K]) Len() int { return len(ix.items) }

// Contains reports whether k is indexed, without counting an access.
func (ix *Index[K]) Contains(k K) bool {
	_, ok := ix.items[k]
	return ok
}

// Peek returns k's size without counting an access.
func (ix *Index[K]) Peek(k K) (int64, bool) {
	e, ok := ix.items[k]
	if !ok {
		return 0, false
	}
	return e.size, true
}

// Get returns k's size and counts a hit: the entry becomes the newest of
// its segment, and under TinyLFU a probationary entry moves to protected.
// (The sketch is not fed here: the owner feeds it once per access wherever
// the access was served.)
func (ix *Index[K]) Get(k K) (int64, bool) {
	e, ok := ix.items[k]
	if !ok {
		return 0, false
	}
	switch {
	case ix.kind == LRU:
		ix.probation.moveToFront(e)
	case e.protected:
		ix.protected.moveToFront(e)
	default:
		ix.probation.remove(e)
		e.protected = true
		ix.protected.pushFront(e)
		ix.protectedBytes += e.size
		ix.demote()
	}
	return e.size, true
}

// demote moves protected entries back to probation while the protected
// segment is over its share, keeping the newest.
func (ix *Index[K]) demote() {
	limit := ix.budget/100*protectedShare + ix.budget%100*protectedShare/100
	for ix.protectedBytes > limit && ix.protected.len > 1 {
		e := ix.protected.back()
		ix.protected.remove(e)
		ix.protectedBytes -= e.size
		e.protected = false
		ix.probation.pushFront(e)
	}
}

// Add indexes k as the newest probationary entry, or updates its size. It
// returns false: an Index never evicts on Add (simplelru's Add reports
// evictions the same way).
func (ix *Index[K]) Add(k K, size int64) bool {
	if e, ok := ix.items[k]; ok {
		if e.protected {
			ix.protectedBytes += size - e.size
		}
		e.size = size
		ix.Get(k)
		return false
	}
	e := &entry[K]{key: k, size: size}
	ix.items[k] = e
	ix.probation.pushFront(e)
	if ix.sketch != nil {
		ix.sketch.SetSample(int64(sampleFactor) * int64(max(len(ix.items), 64)))
	}
	return false
}

// AddOldest indexes k, which must not be indexed yet, as the probationary
// entry that leaves first. A store that rebuilds its index in the
// background while it serves inserts what it finds with it: those entries
// are older than any it stored meanwhile.
func (ix *Index[K]) AddOldest(k K, size int64) {
	if _, ok := ix.items[k]; ok {
		return
	}
	e := &entry[K]{key: k, size: size}
	ix.items[k] = e
	ix.probation.pushBack(e)
	if ix.sketch != nil {
		ix.sketch.SetSample(int64(sampleFactor) * int64(max(len(ix.items), 64)))
	}
}

// Remove drops k, calling onEvict. It reports whether k was indexed.
func (ix *Index[K]) Remove(k K) bool {
	e, ok := ix.items[k]
	if !ok {
		return false
	}
	ix.removeEntry(e)
	return true
}

func (ix *Index[K]) removeEntry(e *entry[K]) {
	if e.protected {
		ix.protected.remove(e)
		ix.protectedBytes -= e.size
	} else {
		ix.probation.remove(e)
	}
	delete(ix.items, e.key)
	if ix.onEvict != nil {
		ix.onEvict(e.key, e.size)
	}
}

// victim returns the entry that leaves next: the oldest probationary one,
// else the oldest protected one.
func (ix *Index[K]) victim() *entry[K] {
	if e := ix.probation.back(); e != nil {
		return e
	}
	return ix.protected.back()
}

// older returns the entry that leaves after e, or nil.
func (ix *Index[K]) older(e *entry[K]) *entry[K] {
	if e.protected {
		return ix.protected.older(e)
	}
	if o := ix.probation.older(e); o != nil {
		return o
	}
	return ix.protected.back()
}

// RemoveOldest evicts the next victim, calling onEvict.
func (ix *Index[K]) RemoveOldest() (K, int64, bool) {
	e := ix.victim()
	if e == nil {
		var zero K
		return zero, 0, false
	}
	ix.removeEntry(e)
	return e.key, e.size, true
}

// Admit decides whether k, not yet indexed, deserves to be stored when
// storing it means evicting need bytes (need <= 0: there is room). LRU
// admits everything. TinyLFU admits k only if the sketch has seen it more
// often than every victim that would make room for it; ties go to the
// incumbent, so a one-off scan cannot displace anything seen twice. bonus
// is added to k's estimate for an access that is certain but not yet
// counted (a chunk fetched ahead of its reader).
//
// A victim that wins is moved to the front of its segment: it is popular
// (its hits may be served by a faster tier this index does not see), and
// the next candidate should face the next-oldest entry rather than the same
// winner again.
func (ix *Index[K]) Admit(k K, need int64, bonus int) bool {
	if ix.kind == LRU {
		return true
	}
	freq := ix.sketch.Estimate(ix.hash(k)) + bonus
	if freq >= 2 {
		ix.shift.repeats++ // read before this miss: the shift watch's signal
	}
	if need <= 0 {
		return true
	}
	var freed int64
	for e := ix.victim(); freed < need; e = ix.older(e) {
		if e == nil {
			return true // everything makes room (need > budget is the owner's check)
		}
		if ix.sketch.Estimate(ix.hash(e.key)) >= freq {
			if e.protected {
				ix.protected.moveToFront(e)
			} else {
				ix.probation.moveToFront(e)
			}
			return false
		}
		freed += e.size
	}
	return true
}

// list is an intrusive doubly linked list with a sentinel: root.next is
// the front (newest), root.prev the back (oldest).
type list[K comparable] struct {
	root entry[K]
	len  int
}

func (l *list[K]) init() {
	l.root.next, l.root.prev = &l.root, &l.root
}

func (l *list[K]) pushFront(e *entry[K]) {
	e.prev, e.next = &l.root, l.root.next
	l.root.next.prev = e
	l.root.next = e
	l.len++
}

func (l *list[K]) pushBack(e *entry[K]) {
	e.next, e.prev = &l.root, l.root.prev
	l.root.prev.next = e
	l.root.prev = e
	l.len++
}

func (l *list[K]) remove(e *entry[K]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	l.len--
}

func (l *list[K]) moveToFront(e *entry[K]) {
	l.remove(e)
	l.pushFront(e)
}

// older returns the entry before e in leaving order, or nil.
func (l *list[K]) older(e *entry[K]) *entry[K] {
	if e.prev == &l.root {
		return nil
	}
	return e.prev
}

func (l *list[K]) back() *entry[K] {
	if l.len == 0 {
		return nil
	}
	return l.root.prev
}
