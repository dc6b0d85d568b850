package policy

import (
	"slices"
	"testing"
)

func newTestIndex(t *testing.T, kind Kind, budget int64) (*Index[int], *Sketch, *[]int) {
	t.Helper()
	s := NewSketch(64)
	s.SetSample(1 << 40)
	var evicted []int
	ix, err := New[int](kind, budget, s, h, func(k int, _ int64) { evicted = append(evicted, k) })
	if err != nil {
		t.Fatal(err)
	}
	return ix, s, &evicted
}

func TestNewErrors(t *testing.T) {
	s := NewSketch(64)
	for _, c := range []struct {
		kind   Kind
		budget int64
		s      *Sketch
		hash   func(int) uint64
	}{
		{"lfu", 10, s, h},
		{TinyLFU, 10, nil, h},
		{TinyLFU, 10, s, nil},
		{LRU, 0, nil, nil},
	} {
		if _, err := New[int](c.kind, c.budget, c.s, c.hash, nil); err == nil {
			t.Errorf("New(%q, %d) succeeded", c.kind, c.budget)
		}
	}
	if _, err := New[int](LRU, 1, nil, nil, nil); err != nil {
		t.Errorf("LRU without a sketch: %v", err)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": TinyLFU, "tinylfu": TinyLFU, "lru": LRU} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"LRU", "arc", " lru"} {
		if _, err := ParseKind(in); err == nil {
			t.Errorf("ParseKind(%q) succeeded", in)
		}
	}
}

func TestLRUOrder(t *testing.T) {
	ix, _, evicted := newTestIndex(t, LRU, 3)
	for k := range 3 {
		if !ix.Admit(k, int64(ix.Len()+1-3), 0) {
			t.Fatalf("LRU refused %d", k)
		}
		ix.Add(k, 1)
	}
	ix.Get(0)
	if !ix.Admit(3, 1, 0) {
		t.Fatal("LRU refused a new key")
	}
	ix.RemoveOldest()
	ix.Add(3, 1)
	if !slices.Equal(*evicted, []int{1}) || !ix.Contains(0) || !ix.Contains(3) {
		t.Fatalf("evicted %v", *evicted)
	}
}

func TestAdmitRoomAndFrequency(t *testing.T) {
	ix, s, _ := newTestIndex(t, TinyLFU, 4)
	if !ix.Admit(1, 0, 0) {
		t.Fatal("refused with room left")
	}
	ix.Add(1, 4)
	s.Add(h(1))
	s.Add(h(2))
	if ix.Admit(2, 4, 0) {
		t.Fatal("a key seen once displaced one seen once (ties go to the incumbent)")
	}
	if !ix.Admit(2, 4, 1) {
		t.Fatal("the bonus for an access not yet counted was ignored")
	}
	s.Add(h(2))
	if !ix.Admit(2, 4, 0) {
		t.Fatal("a key seen twice lost to one seen once")
	}
	if ix.Peek(1); !ix.Contains(1) {
		t.Fatal("Admit must not evict")
	}
}

// TestAdmitAllVictims: with entries of different sizes, the candidate must
// beat every entry that leaves to make room.
func TestAdmitAllVictims(t *testing.T) {
	ix, s, _ := newTestIndex(t, TinyLFU, 10)
	ix.Add(1, 3) // oldest, seen never
	ix.Add(2, 3) // seen 5 times
	ix.Add(3, 4)
	for range 5 {
		s.Add(h(2))
	}
	for range 3 {
		s.Add(h(9))
	}
	if !ix.Admit(9, 3, 0) {
		t.Fatal("refused although only key 1 (never seen) must leave")
	}
	if ix.Admit(9, 6, 0) {
		t.Fatal("admitted although key 2, seen more often, must leave too")
	}
}

// TestProtectedSurvivesProbation: an entry hit once more moves to the
// protected segment; new entries and their evictions churn probation only.
func TestProtectedSurvivesProbation(t *testing.T) {
	ix, _, evicted := newTestIndex(t, TinyLFU, 10)
	for k := range 10 {
		ix.Add(k, 1)
	}
	ix.Get(0) // protected now, although the oldest added
	for k := 10; k < 19; k++ {
		ix.RemoveOldest()
		ix.Add(k, 1)
	}
	if !ix.Contains(0) || slices.Contains(*evicted, 0) {
		t.Fatalf("protected entry evicted: %v", *evicted)
	}
	if ix.Len() != 10 {
		t.Fatalf("len %d", ix.Len())
	}
}

// cacheOf drives ix as a cache of capacity entries of size 1 would: the
// returned access records k in the sketch and reports a hit, or asks for
// admission and evicts to make room.
func cacheOf(ix *Index[int], s *Sketch, capacity int) func(k int) bool {
	return func(k int) bool {
		s.Add(h(k))
		if _, ok := ix.Get(k); ok {
			return true
		}
		if ix.Admit(k, int64(ix.Len()+1-capacity), 0) {
			for ix.Len() >= capacity {
				ix.RemoveOldest()
			}
			ix.Add(k, 1)
		}
		return false
	}
}

// TestScanResistance: a hot set seen often keeps its place while a one-off
// scan of ten times the capacity passes.
func TestScanResistance(t *testing.T) {
	const capacity, hot = 64, 48
	ix, s, _ := newTestIndex(t, TinyLFU, capacity)
	s.SetSample(20 * capacity)
	access := cacheOf(ix, s, capacity)
	for round := range 20 {
		for k := range hot {
			access((k*7 + round) % hot)
		}
	}
	misses := 0
	for i := range 10 * capacity {
		access(1000 + i)
		if !access(i % hot) {
			misses++
		}
	}
	if misses > 0 {
		t.Fatalf("hot set missed %d times during the scan", misses)
	}
}

// TestNewHotSetTakesOver: a hot set of 48 entries is read for a long time
// (its counters saturate), then a disjoint one takes its place. The new set
// must be served from the index within two halving periods of the sketch
// (2048 reads here; an LRU cache would replace its 64 entries within about
// 64 misses), although the old one sits in the protected segment with high
// counts.
func TestNewHotSetTakesOver(t *testing.T) {
	const capacity, hot = 64, 48
	ix, s, _ := newTestIndex(t, TinyLFU, capacity)
	s.SetSample(sampleFactor * capacity)
	access := cacheOf(ix, s, capacity)
	for i := range 4000 {
		access(i * 7 % hot)
	}
	for i := range 2 * sampleFactor * capacity {
		access(1000 + i*7%hot)
	}
	hits := 0
	for i := range 10 * hot {
		if access(1000 + i*7%hot) {
			hits++
		}
	}
	if ratio := float64(hits) / (10 * hot); ratio < 0.9 {
		t.Fatalf("new hot set hit ratio %.3f after two halving periods, want at least 0.9", ratio)
	}
	for k := 1000; k < 1000+hot; k++ {
		if !ix.Contains(k) {
			t.Fatalf("new hot key %d not indexed", k)
		}
	}
}

func TestRemoveAndSizes(t *testing.T) {
	ix, _, evicted := newTestIndex(t, TinyLFU, 100)
	ix.Add(1, 10)
	ix.Get(1)
	ix.Add(1, 20) // size update of a protected entry
	if n, ok := ix.Peek(1); !ok || n != 20 {
		t.Fatalf("Peek = %d, %v", n, ok)
	}
	if !ix.Remove(1) || ix.Remove(1) || ix.Len() != 0 || ix.protectedBytes != 0 {
		t.Fatalf("Remove: len %d protected bytes %d", ix.Len(), ix.protectedBytes)
	}
	if _, _, ok := ix.RemoveOldest(); ok {
		t.Fatal("RemoveOldest of an empty index")
	}
	if !slices.Equal(*evicted, []int{1}) {
		t.Fatalf("evicted %v", *evicted)
	}
}

// TestAddOldest: entries added with AddOldest leave before every entry
// added with Add, the last one added first, under both policies; an entry
// already indexed is left where it is.
func TestAddOldest(t *testing.T) {
	for _, kind := range []Kind{LRU, TinyLFU} {
		t.Run(string(kind), func(t *testing.T) {
			ix, _, evicted := newTestIndex(t, kind, 100)
			ix.Add(1, 1)
			ix.Add(2, 1)
			ix.AddOldest(3, 1)
			ix.AddOldest(4, 1)
			ix.AddOldest(1, 5) // indexed: unchanged
			if size, _ := ix.Peek(1); size != 1 || ix.Len() != 4 {
				t.Fatalf("entry 1 size %d, %d entries", size, ix.Len())
			}
			for ix.Len() > 0 {
				ix.RemoveOldest()
			}
			if want := []int{4, 3, 1, 2}; !slices.Equal(*evicted, want) {
				t.Fatalf("eviction order %v, want %v", *evicted, want)
			}
		})
	}
}

// TestShiftWatch: a hit ratio that falls by half because of misses on
// entries never read before (a scan) is not a shift; one that collapses
// with misses on entries read again and again is, and then the old entries
// lose their counts and their protection.
func TestShiftWatch(t *testing.T) {
	sk := NewSketch(1024)
	ix, err := New[int](TinyLFU, 64, sk, func(k int) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 64 {
		ix.Add(k, 1)
		ix.Get(k) // protected
		for range 8 {
			sk.Add(ix.hash(k))
		}
	}
	for k := 1000; k < 1010; k++ { // the next hot set, read before
		sk.Add(ix.hash(k))
		sk.Add(ix.hash(k))
	}
	var reads, misses int64
	fresh := 2000
	window := func(hitRatio float64, repeat bool) {
		for i := range 64 {
			reads++
			if float64(i) < hitRatio*64 {
				continue
			}
			misses++
			ix.Observe(reads, misses)
			k := fresh
			if repeat {
				k = 1000 + i%10
			} else {
				fresh++
			}
			ix.Admit(k, 1, 0)
		}
	}
	for range 10 {
		window(0.9, true)
	}
	for range 10 {
		window(0.4, false)
	}
	if ix.Shifts() != 0 {
		t.Fatalf("misses on first reads were taken for a shift (%d)", ix.Shifts())
	}
	for range 10 {
		window(0.9, true)
	}
	window(0.1, true)
	window(0.1, true)
	if ix.Shifts() != 1 {
		t.Fatalf("a collapsed hit ratio was not taken for a shift (%d)", ix.Shifts())
	}
	if n := sk.Estimate(ix.hash(0)); n != 0 {
		t.Errorf("after a shift an old entry's count is %d, want 0", n)
	}
	if ix.protected.len != 0 || ix.protectedBytes != 0 {
		t.Errorf("after a shift %d entries (%d bytes) still protected", ix.protected.len, ix.protectedBytes)
	}
	window(0.1, true)
	if ix.Shifts() != 1 {
		t.Errorf("the fallen ratio is the new baseline, yet %d shifts", ix.Shifts())
	}
}
