package policysim

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/cache/policy"
)

// TestDesignFigures prints the tables of docs/design.md ("Disk tier
// policy"); run it with -v to regenerate them.
func TestDesignFigures(t *testing.T) {
	t.Log("| trace | LRU (writes) | S3-FIFO (writes) | tinylfu (writes) | Belady |")
	for _, skew := range []float64{0.7, 0.9, 1.1} {
		tr := Repeat(Zipf(1, 400, skew, 4000))
		l, b, s := LRU(tr, 64, 4000), Belady(tr, 64, 4000), S3FIFO(tr, 64, 4000)
		p, _ := Index(tr, 64, 4000, policy.TinyLFU)
		t.Logf("| Zipf(%.1f) | %.3f (%d) | %.3f (%d) | %.3f (%d) | %.3f |", skew, l.Ratio(), l.Writes, s.Ratio(), s.Writes, p.Ratio(), p.Writes, b.Ratio())
	}
	tr, end := Scan(3, 48, 2000, 640, 2000)
	hot := func(k int) bool { return k < 48 }
	sh := Shift(4, 400, 0.9, 16000)
	t.Log("| policy | hot set during scan | after | shift: before | 0-128 after | 128-640 | 640-1000 | 1000-2000 | 2000-4000 | 4000-8000 |")
	for _, name := range []string{"LRU", "S3-FIFO", "tinylfu", "Belady"} {
		var r, s Result
		switch name {
		case "LRU":
			r, s = LRU(tr, 64, 0), LRU(sh, 64, 0)
		case "S3-FIFO":
			r, s = S3FIFO(tr, 64, 0), S3FIFO(sh, 64, 0)
		case "tinylfu":
			r, _ = Index(tr, 64, 0, policy.TinyLFU)
			s, _ = Index(sh, 64, 0, policy.TinyLFU)
		case "Belady":
			r, s = Belady(tr, 64, 0), Belady(sh, 64, 0)
		}
		t.Logf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |", name,
			r.RatioOver(tr, 2000, end, hot), r.RatioOver(tr, end, len(tr), hot),
			s.RatioOver(sh, 4000, 8000, nil), s.RatioOver(sh, 8000, 8128, nil), s.RatioOver(sh, 8128, 8640, nil), s.RatioOver(sh, 8640, 9000, nil),
			s.RatioOver(sh, 9000, 10000, nil), s.RatioOver(sh, 10000, 12000, nil), s.RatioOver(sh, 12000, 16000, nil))
	}
}

// TestRestartSeeded: a restart in the middle of a Zipf(0.9) trace, followed
// by a one-off scan of ten times the cache interleaved with the trace.
// Seeding the sketch from the chunks found keeps the hit ratio of the
// Zipf requests during the scan close to that of a process that never
// restarted; an empty sketch lets the scan in (LRU-like) and loses it.
func TestRestartSeeded(t *testing.T) {
	z := Zipf(5, 400, 0.9, 12000)
	tr := append(Trace{}, z[:6000]...)
	for i := range 640 {
		tr = append(tr, 1000+i, z[6000+i])
	}
	tr = append(tr, z[6640:]...)
	zipfOnly := func(k int) bool { return k < 1000 }
	ratio := func(at int, seed bool) float64 {
		r, err := IndexRestart(tr, 64, 0, policy.TinyLFU, at, seed)
		if err != nil {
			t.Fatal(err)
		}
		return r.RatioOver(tr, 6000, 7280, zipfOnly)
	}
	none, seeded, empty := ratio(-1, false), ratio(6000, true), ratio(6000, false)
	t.Logf("Zipf hit ratio during the scan: no restart %.3f, restart seeded %.3f, restart with an empty sketch %.3f", none, seeded, empty)
	if seeded < none-0.03 || seeded < empty+0.05 {
		t.Errorf("seeded restart %.3f: want within 0.03 of %.3f and 0.05 above %.3f", seeded, none, empty)
	}
}
