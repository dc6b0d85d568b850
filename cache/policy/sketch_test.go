package policy

import (
	"sync"
	"testing"
)

func h(i int) uint64 {
	x := uint64(i) + 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func TestSketchCounts(t *testing.T) {
	s := NewSketch(1024)
	s.SetSample(1 << 40) // no halving here
	for i := range 100 {
		for range i % 16 {
			s.Add(h(i))
		}
	}
	over := 0
	for i := range 100 {
		want := i % 16
		got := s.Estimate(h(i))
		if got < min(want, maxCount) {
			t.Fatalf("key %d: estimate %d below its count %d", i, got, want)
		}
		if got != want {
			over++
		}
	}
	// 100 keys in 4096 counters per row: collisions in all four rows are rare.
	if over > 5 {
		t.Fatalf("%d of 100 estimates too high", over)
	}
	if got := s.Estimate(h(5000)); got > 1 {
		t.Fatalf("unseen key estimated at %d", got)
	}
}

func TestSketchSaturates(t *testing.T) {
	s := NewSketch(64)
	s.SetSample(1 << 40)
	for range 100 {
		s.Add(h(1))
	}
	if got := s.Estimate(h(1)); got != maxCount {
		t.Fatalf("estimate %d after 100 adds, want %d", got, maxCount)
	}
}

func TestSketchHalves(t *testing.T) {
	s := NewSketch(64)
	s.SetSample(64)
	add := func(k, n int) {
		for range n {
			s.Add(h(k))
		}
	}
	add(1, 12)
	add(2, 5)
	add(3, 15)
	add(4, 15)
	add(5, 15)
	add(6, 1) // 63 additions: no halving yet
	if a, b := s.Estimate(h(1)), s.Estimate(h(6)); a != 12 || b != 1 {
		t.Fatalf("before halving: %d %d, want 12 1", a, b)
	}
	add(6, 1) // the 64th
	if a, b, c, d := s.Estimate(h(1)), s.Estimate(h(2)), s.Estimate(h(3)), s.Estimate(h(6)); a != 6 || b != 2 || c != 7 || d != 1 {
		t.Fatalf("after halving: %d %d %d %d, want 6 2 7 1", a, b, c, d)
	}
	// Half of the 64 additions count towards the next period: 32 more,
	// not counting additions to a saturated key.
	add(7, 20)
	add(8, 15)
	add(9, 1)
	if got := s.Estimate(h(1)); got != 6 {
		t.Fatalf("halved too early: %d", got)
	}
	add(9, 1)
	if got := s.Estimate(h(1)); got != 3 {
		t.Fatalf("second halving: %d, want 3", got)
	}
}

// TestSketchSampleFloor: the halving period is at least a quarter of the
// table, whatever SetSample asks.
func TestSketchSampleFloor(t *testing.T) {
	s := NewSketch(1024)
	s.SetSample(1)
	if got := s.sample.Load(); got != 256 {
		t.Fatalf("period %d, want 256", got)
	}
	s.SetSample(5000)
	if got := s.sample.Load(); got != 5000 {
		t.Fatalf("period %d, want 5000", got)
	}
}

func TestSketchClear(t *testing.T) {
	s := NewSketch(64)
	s.Add(h(1))
	s.Clear()
	if got := s.Estimate(h(1)); got != 0 {
		t.Fatalf("estimate %d after Clear", got)
	}
}

// TestSketchConcurrent runs under -race: Add and Estimate from many
// goroutines, and no key ever reads above the saturation value.
func TestSketchConcurrent(t *testing.T) {
	s := NewSketch(256)
	s.SetSample(1 << 40)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				s.Add(h(i%300 + g))
				if e := s.Estimate(h(i % 300)); e > maxCount {
					t.Errorf("estimate %d", e)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Key 150 was added about 16 times by each goroutine: a lost race
	// may skip an increment, never most of them.
	if got := s.Estimate(h(150)); got < 8 {
		t.Fatalf("a key added about 64 times reads %d", got)
	}
}

func BenchmarkSketchAdd(b *testing.B) {
	s := NewSketch(1 << 16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Add(h(i & 0xffff))
			i++
		}
	})
}

func BenchmarkSketchAddSerial(b *testing.B) {
	s := NewSketch(1 << 16)
	b.ReportAllocs()
	for i := range b.N {
		s.Add(h(i & 0xffff))
	}
}

func BenchmarkSketchAddHot(b *testing.B) {
	s := NewSketch(1 << 16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Add(h(1))
		}
	})
}
