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
	s.SetSample(1 << 40)
	for range 12 {
		s.Add(h(1))
	}
	for range 5 {
		s.Add(h(2))
	}
	s.SetSample(17) // the next addition reaches it
	s.Add(h(3))
	if a, b, c := s.Estimate(h(1)), s.Estimate(h(2)), s.Estimate(h(3)); a != 6 || b != 2 || c != 0 {
		t.Fatalf("after halving: %d %d %d, want 6 2 0", a, b, c)
	}
	// 18 additions made the first halving; half of them count towards the
	// next, so 8 more reach 17 again.
	for range 7 {
		s.Add(h(4))
	}
	if got := s.Estimate(h(1)); got != 6 {
		t.Fatalf("halved too early: %d", got)
	}
	s.Add(h(4))
	if got := s.Estimate(h(1)); got != 3 {
		t.Fatalf("second halving: %d, want 3", got)
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
