package limiter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestShapeUnlimitedReturnsBody(t *testing.T) {
	l, _ := newFake(t, Config{RateAfter: 1 << 20, Classes: map[string]int64{"x": 0}})
	le, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	body := &zeroReader{}
	for _, r := range []int64{0, Unlimited} {
		if got := l.Shape(body, le, r); got != io.ReadCloser(body) {
			t.Errorf("rate %d: Shape wrapped an unlimited body", r)
		}
	}
	if got := l.Shape(body, nil, 1<<20); got != io.ReadCloser(body) {
		t.Error("nil lease and no global rate: Shape wrapped the body")
	}
	if got := l.Shape(body, le, 1<<20); got == io.ReadCloser(body) {
		t.Error("a rate override was not applied")
	}
	l2, _ := newFake(t, Config{GlobalRate: 1 << 20})
	if got := l2.Shape(body, le, Unlimited); got == io.ReadCloser(body) {
		t.Error("GlobalRate set but the body was not shaped")
	}
}

// readFor reads r until the clock passes end and returns the bytes whose
// Read returned by then.
func readFor(t *testing.T, r io.Reader, now func() time.Time, end time.Time, buf []byte) int64 {
	var total int64
	for i := 0; i < 1_000_000 && now().Before(end); i++ {
		n, err := r.Read(buf)
		if err != nil {
			t.Errorf("Read: %v", err)
			return total
		}
		if !now().After(end) {
			total += int64(n)
		}
	}
	return total
}

func TestShapeOneClientRate(t *testing.T) {
	const rate = 1 * MiB
	l, clk := newFake(t, Config{Rate: rate})
	le, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	r := l.Shape(&zeroReader{}, le, 0)
	defer r.Close()
	start := clk.Now()
	got := readFor(t, r, clk.Now, start.Add(10*time.Second), make([]byte, 32*KiB))
	if want := float64(rate * 10); !within(float64(got), want, 0.05) {
		t.Errorf("10 simulated seconds at %d B/s delivered %d bytes, want %.0f ±5%%", rate, got, want)
	}
	if st := l.Stats(); st.Waits == 0 || st.BytesShaped < uint64(got) {
		t.Errorf("stats %+v: want waits and at least %d bytes shaped", st, got)
	}
}

func TestShapeOverrideRate(t *testing.T) {
	l, clk := newFake(t, Config{Rate: 10 * MiB})
	le, _ := l.Admit("a")
	defer le.Release()
	r := l.Shape(&zeroReader{}, le, 256*KiB)
	defer r.Close()
	got := readFor(t, r, clk.Now, clk.Now().Add(10*time.Second), make([]byte, 64*KiB))
	if want := float64(256 * KiB * 10); !within(float64(got), want, 0.05) {
		t.Errorf("override 256 KiB/s delivered %d in 10s, want %.0f ±5%%", got, want)
	}
}

func TestShapeLowRateWaitsAreShort(t *testing.T) {
	// At 1 KiB/s a 64 KiB slice would leave the client without data for a
	// minute; slices shrink to a quarter second of the rate instead.
	const rate = 1 * KiB
	l, clk := newFake(t, Config{Rate: rate})
	le, _ := l.Admit("a")
	defer le.Release()
	r := l.Shape(&zeroReader{}, le, 0)
	defer r.Close()
	got := readFor(t, r, clk.Now, clk.Now().Add(60*time.Second), make([]byte, 64*KiB))
	longest := clk.MaxSleep()
	if longest > 250*time.Millisecond {
		t.Errorf("longest wait %v at %d B/s, want <= 250ms", longest, rate)
	}
	// The 64 KiB burst floor, then the rate.
	if want := float64(MinBurst + rate*60); !within(float64(got), want, 0.05) {
		t.Errorf("delivered %d in 60s, want %.0f ±5%%", got, want)
	}
}

// parallel runs conns[i] readers for client i inside a synctest bubble for
// ten simulated seconds and returns the bytes each client received.
func parallel(t *testing.T, cfg Config, conns []int, rate int64) []int64 {
	t.Helper()
	got := make([]int64, len(conns))
	synctest.Test(t, func(t *testing.T) {
		l, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var leases []*Lease
		type shaped struct {
			client int
			r      io.ReadCloser
		}
		var readers []shaped
		for c, n := range conns {
			for range n {
				le, err := l.Admit(string(rune('a' + c)))
				if err != nil {
					t.Fatal(err)
				}
				leases = append(leases, le)
				readers = append(readers, shaped{c, l.Shape(&zeroReader{}, le, rate)})
			}
		}
		end := time.Now().Add(10 * time.Second)
		type result struct {
			client int
			n      int64
		}
		results := make(chan result)
		for _, s := range readers {
			go func() {
				results <- result{s.client, readFor(t, s.r, time.Now, end, make([]byte, 64*KiB))}
			}()
		}
		for range readers {
			res := <-results
			got[res.client] += res.n
		}
		for _, s := range readers {
			s.r.Close()
		}
		for _, le := range leases {
			le.Release()
		}
	})
	return got
}

func TestShapeParallelReadersShareClientRate(t *testing.T) {
	const rate = 1 * MiB
	got := parallel(t, Config{Rate: rate}, []int{8}, 0)
	if want := float64(rate * 10); !within(float64(got[0]), want, 0.05) {
		t.Errorf("8 connections of one client got %d in 10s, want %.0f ±5%% (one shared bucket)", got[0], want)
	}
}

func TestShapeGlobalFairShare(t *testing.T) {
	const global = 10 * MiB
	// Ten clients with 1 to 4 connections each: the share is per client.
	conns := []int{1, 2, 3, 4, 1, 2, 3, 4, 1, 8}
	got := parallel(t, Config{GlobalRate: global}, conns, 0)
	share := float64(global) / float64(len(conns)) * 10
	var sum int64
	for c, n := range got {
		sum += n
		if !within(float64(n), share, 0.10) {
			t.Errorf("client %d (%d conns) got %d, want its share %.0f ±10%%", c, conns[c], n, share)
		}
	}
	if limit := float64(global*10 + global/4); float64(sum) > limit {
		t.Errorf("node sent %d, above the cap plus one burst (%.0f)", sum, limit)
	}
}

func TestShapeGlobalAloneGetsAll(t *testing.T) {
	const global = 10 * MiB
	got := parallel(t, Config{GlobalRate: global}, []int{3}, 0)
	if want := float64(global * 10); !within(float64(got[0]), want, 0.05) {
		t.Errorf("a lone client got %d, want the whole cap %.0f ±5%%", got[0], want)
	}
}

func TestShapeGlobalCapsClientRate(t *testing.T) {
	// A client whose own rate is below its share keeps its own rate.
	got := parallel(t, Config{GlobalRate: 10 * MiB, Rate: 1 * MiB}, []int{2, 2}, 0)
	for c, n := range got {
		if want := float64(10 * MiB); !within(float64(n), want, 0.05) {
			t.Errorf("client %d got %d, want its own rate ×10s %.0f ±5%%", c, n, want)
		}
	}
}

func TestShapeRateAfter(t *testing.T) {
	const after = 1 * MiB
	l, clk := newFake(t, Config{Rate: 64 * KiB, RateAfter: after})
	le, _ := l.Admit("a")
	defer le.Release()
	body := &recordingReader{}
	r := l.Shape(body, le, 0)
	defer r.Close()
	buf := make([]byte, 100*KiB) // not a divisor of after: the boundary is mid-buffer
	var total int64
	for total < after {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(n)
	}
	if total != after {
		t.Fatalf("free phase returned %d bytes, want exactly %d", total, after)
	}
	if n, d := clk.Sleeps(); n != 0 {
		t.Fatalf("the first %d bytes waited %d times (%v)", after, n, d)
	}
	// Beyond rate_after: the bucket's 64 KiB burst, then 16 KiB slices
	// (a quarter second at 64 KiB/s), each waiting 250ms.
	for range 8 {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != 16*KiB {
			t.Fatalf("slice of %d bytes, want 16 KiB", n)
		}
	}
	if n, d := clk.Sleeps(); n != 4 || d < 990*time.Millisecond || d > time.Second {
		t.Fatalf("after rate_after: %d waits for %v, want 4 waits of 250ms", n, d)
	}
}

func TestShapeRateAfterStillUnderGlobalCap(t *testing.T) {
	// rate_after lifts the client's rate, not the node's cap.
	l, clk := newFake(t, Config{Rate: 64 * KiB, RateAfter: 4 * MiB, GlobalRate: 1 * MiB})
	le, _ := l.Admit("a")
	defer le.Release()
	r := l.Shape(&zeroReader{}, le, 0)
	defer r.Close()
	buf := make([]byte, 64*KiB)
	for range 4 * MiB / (64 * KiB) {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	// 4 MiB at 1 MiB/s after a 256 KiB node burst: 3.75 s, where the
	// client's own 64 KiB/s would have taken a minute.
	if _, d := clk.Sleeps(); d < 3700*time.Millisecond || d > 3800*time.Millisecond {
		t.Errorf("free bytes waited %v in total, want 3.75s (node cap only)", d)
	}
}

// recordingReader is an endless body that records every read size.
type recordingReader struct {
	mu     sync.Mutex
	sizes  []int
	total  int64
	closed bool
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes = append(r.sizes, len(p))
	r.total += int64(len(p))
	return len(p), nil
}

func (r *recordingReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func TestShapeNeverReadsAhead(t *testing.T) {
	for _, burst := range []int64{0, 4 * KiB} {
		l, _ := newFake(t, Config{Rate: 256 * KiB, Burst: burst, GlobalRate: 1 * MiB})
		slice := l.s.slice
		le, _ := l.Admit("a")
		body := &recordingReader{}
		r := l.Shape(body, le, 0)
		buf := make([]byte, 1*MiB)
		var returned int64
		for range 200 {
			n, err := r.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			returned += int64(n)
			if body.total != returned {
				t.Fatalf("burst %d: body gave %d bytes, reader returned %d: read ahead", burst, body.total, returned)
			}
		}
		for i, s := range body.sizes {
			if int64(s) > slice {
				t.Fatalf("burst %d: read %d asked body for %d bytes, more than a slice (%d)", burst, i, s, slice)
			}
		}
		r.Close()
		if !body.closed {
			t.Error("closing the shaped reader did not close the body")
		}
		le.Release()
	}
}

// blockingSleep waits for real but reports each wait on entered.
func blockingSleep(entered chan<- time.Duration) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		entered <- d
		return timerSleep(ctx, d)
	}
}

func TestShapeCloseWhileWaiting(t *testing.T) {
	for _, viaLimiter := range []bool{false, true} {
		entered := make(chan time.Duration, 1)
		// 1 byte/s with a 1 KiB burst: after the burst, each 256-byte slice
		// waits over four minutes.
		l, err := New(Config{Rate: 1, Burst: 1024}, nil, WithSleep(blockingSleep(entered)))
		if err != nil {
			t.Fatal(err)
		}
		le, _ := l.Admit("a")
		body := &recordingReader{}
		r := l.Shape(body, le, 0)
		base := runtime.NumGoroutine()
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, 1024)
			for range 10 {
				if _, err := r.Read(buf); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		select {
		case d := <-entered:
			if d < 4*time.Minute {
				t.Fatalf("wait %v, want 256s", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("reader never waited")
		}
		start := time.Now()
		if viaLimiter {
			l.Close()
		} else {
			r.Close()
		}
		select {
		case err := <-errc:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Read returned %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second): // it would wait 256 s
			t.Fatal("Read still waiting 10s after Close")
		}
		t.Logf("Read noticed Close after %v", time.Since(start))
		want := base
		if viaLimiter {
			want-- // the janitor is gone too
		}
		testenv.WaitFor(t, 10*time.Second, "goroutines back to baseline", func() bool {
			return runtime.NumGoroutine() <= want
		})
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		r.Close()
		le.Release()
		l.Close()
		if !viaLimiter && !body.closed {
			t.Error("body not closed")
		}
	}
}

func TestShapeDeliversExactBytes(t *testing.T) {
	data := make([]byte, 300*KiB+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	l, _ := newFake(t, Config{Rate: 100 * KiB, RateAfter: 10*KiB + 1, GlobalRate: 1 * MiB})
	le, _ := l.Admit("a")
	defer le.Release()
	r := l.Shape(io.NopCloser(bytes.NewReader(data)), le, 0)
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("shaped copy differs: %d bytes, want %d", len(got), len(data))
	}
	if st := l.Stats(); st.BytesShaped != uint64(len(data)) {
		t.Errorf("BytesShaped = %d, want %d", st.BytesShaped, len(data))
	}
}

func TestShapeNilLeaseUsesGlobalOnly(t *testing.T) {
	l, clk := newFake(t, Config{Rate: 1 * KiB, GlobalRate: 1 * MiB})
	r := l.Shape(&zeroReader{}, nil, 0)
	defer r.Close()
	got := readFor(t, r, clk.Now, clk.Now().Add(10*time.Second), make([]byte, 64*KiB))
	if want := float64(10 * MiB); !within(float64(got), want, 0.05) {
		t.Errorf("nil lease got %d in 10s, want the node rate %.0f ±5%% (no client rate)", got, want)
	}
}
