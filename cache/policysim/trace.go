// Package policysim replays request traces through cache replacement
// policies and reports their hit ratios: LRU, Belady's offline optimum,
// S3-FIFO and the disk tier's own policy (cache/policy, the code that
// ships). It also generates the traces the design was judged on, each
// deterministic from a seed, so a figure in docs/design.md can be
// reproduced by a test.
//
// Every object of a trace has the same size, so a hit ratio is also a byte
// hit ratio, and Belady's furthest-next-use rule is exactly optimal.
package policysim

import (
	"math"
	"math/rand/v2"
	"sort"
)

// A Trace is a sequence of requests, each naming an object by number.
type Trace []int

// zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^s.
// math/rand's Zipf needs s > 1; CDN popularity is usually 0.6 to 1.0, so
// this one inverts the cumulative distribution instead.
type zipf struct {
	cdf []float64
	r   *rand.Rand
}

func newZipf(r *rand.Rand, n int, s float64) *zipf {
	cdf := make([]float64, n)
	var sum float64
	for i := range n {
		sum += math.Pow(float64(i+1), -s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return &zipf{cdf: cdf, r: r}
}

func (z *zipf) next() int {
	u := z.r.Float64()
	return min(sort.SearchFloat64s(z.cdf, u), len(z.cdf)-1)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// Zipf returns length requests over objects 0..n-1 drawn from a Zipf
// popularity of the given skew; object 0 is the most popular.
func Zipf(seed uint64, n int, skew float64, length int) Trace {
	z := newZipf(newRand(seed), n, skew)
	t := make(Trace, length)
	for i := range t {
		t[i] = z.next()
	}
	return t
}

// Scan is a hot set under a one-off scan: hot objects 0..hot-1 are
// requested uniformly; from request before on, every other request reads
// the next of scan objects that are never requested again (numbered from
// hot up), until the scan is done; the hot set alone follows for after
// requests. It returns the trace and the index where the scan ends.
func Scan(seed uint64, hot, before, scan, after int) (Trace, int) {
	r := newRand(seed)
	t := make(Trace, 0, before+2*scan+after)
	for range before {
		t = append(t, r.IntN(hot))
	}
	for i := range scan {
		t = append(t, r.IntN(hot), hot+i)
	}
	end := len(t)
	for range after {
		t = append(t, r.IntN(hot))
	}
	return t, end
}

// Shift is a popularity that moves: length/2 requests from a Zipf(skew)
// over objects 0..n-1, then length/2 from the same distribution over
// objects n..2n-1, so yesterday's hot set goes cold at once.
func Shift(seed uint64, n int, skew float64, length int) Trace {
	z := newZipf(newRand(seed), n, skew)
	t := make(Trace, length)
	for i := range t {
		t[i] = z.next()
		if i >= length/2 {
			t[i] += n
		}
	}
	return t
}

// Repeat returns t followed by itself: a warm-up pass and a measured pass
// over the same requests.
func Repeat(t Trace) Trace { return append(append(Trace{}, t...), t...) }
