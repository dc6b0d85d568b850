package limiter

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Shape wraps body so its bytes reach the caller no faster than the
// client's rate and the client's share of GlobalRate.
//
// rate > 0 is this download's per-client rate (from a token or ClassRate);
// 0 means Config.Rate; Unlimited lifts the per-client rate. The rate is
// applied to the client's bucket, which all of the client's downloads on
// this node share: eight parallel connections split one rate. When the
// client's downloads ask for different rates, the bucket follows whichever
// took the last slice, so the client gets a rate between them.
//
// When neither a per-client rate nor GlobalRate applies, Shape returns body
// itself, so io.WriterTo and sendfile still work and the cost is nil.
//
// The returned reader never reads ahead: each Read reads at most one slice
// from body, waits until the buckets allow those bytes, then returns them.
// A slice is min(Burst, 64 KiB, a quarter second at the rate in effect,
// but at least 256 bytes), so a slow client still gets data four times a
// second (down to 1 KiB/s) and never looks stalled to its HTTP client. The
// first RateAfter bytes skip the per-client wait.
//
// Close closes body and wakes a Read that is waiting, which then returns
// ErrClosed; Limiter.Close does the same for every reader. A nil lease
// shapes by GlobalRate only (no client bucket, no fair share).
func (l *Limiter) Shape(body io.ReadCloser, lease *Lease, rate int64) io.ReadCloser {
	switch {
	case rate == 0:
		rate = l.s.Rate
	case rate < 0:
		rate = 0
	}
	if lease == nil {
		rate = 0
	}
	if rate == 0 && l.global == nil {
		return body
	}
	r := &shapedReader{l: l, body: body, rate: rate, after: l.s.RateAfter}
	if lease != nil {
		r.c = lease.c
	}
	r.ctx, r.cancel = context.WithCancel(l.ctx)
	return r
}

// shapedReader releases body's bytes at the client's rate. Read is not safe
// for concurrent use (no io.Reader is); Close may race with Read.
type shapedReader struct {
	l      *Limiter
	body   io.ReadCloser
	c      *client // nil: no per-client bucket
	rate   int64   // per-client bytes/s; 0 = only the global share
	after  int64   // bytes left before per-client shaping starts
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
}

func (r *shapedReader) Read(p []byte) (int, error) {
	if r.ctx.Err() != nil {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return r.body.Read(p)
	}
	l := r.l
	free := r.after > 0 // rate_after: the client's rate does not apply yet
	if free && l.global == nil {
		// Nothing to wait for at all.
		n, err := r.body.Read(p[:min(int64(len(p)), r.after)])
		r.after -= int64(n)
		l.bytesShaped.Add(uint64(n))
		return n, err
	}
	var eff int64 // the client bucket's rate now; 0 when it does not apply
	pace := l.s.GlobalRate
	if !free && r.c != nil {
		eff = r.effective()
		pace = eff
	}
	want := min(int64(len(p)), l.s.slice, max(pace/4, minSlice))
	if free {
		want = min(want, r.after)
	}
	n, err := r.body.Read(p[:want])
	if n > 0 {
		if werr := r.wait(n, eff); werr != nil {
			return 0, werr
		}
		if free {
			r.after -= int64(n)
		}
		l.bytesShaped.Add(uint64(n))
	}
	return n, err
}

// minSlice is the smallest slice: below it the wakeups cost more than the
// smoothness is worth.
const minSlice = 256

// effective is the client's rate now: the download's rate, capped by the
// client's share of GlobalRate.
func (r *shapedReader) effective() int64 {
	l := r.l
	eff := r.rate
	if l.global != nil {
		share := l.s.GlobalRate / max(l.activeClients.Load(), 1)
		if eff == 0 || share < eff {
			eff = max(share, 1)
		}
	}
	return eff
}

// wait blocks until n bytes may be released: on the client's bucket (when
// eff > 0) and on the node's, whichever is later.
func (r *shapedReader) wait(n int, eff int64) error {
	l := r.l
	now := l.now()
	var rc, rg *rate.Reservation
	var d time.Duration
	if eff > 0 {
		rc = r.bucket(now, eff).ReserveN(now, n)
		d = rc.DelayFrom(now)
	}
	if l.global != nil {
		rg = l.global.ReserveN(now, n)
		d = max(d, rg.DelayFrom(now))
	}
	if d <= 0 {
		return nil
	}
	l.waits.Add(1)
	l.waitNanos.Add(int64(d))
	if err := l.sleep(r.ctx, d); err != nil {
		// Give back what was not used, so other downloads do not pay for it.
		at := l.now()
		if rc != nil {
			rc.CancelAt(at)
		}
		if rg != nil {
			rg.CancelAt(at)
		}
		return ErrClosed
	}
	return nil
}

// bucket returns the client's byte bucket, set to eff bytes/s.
func (r *shapedReader) bucket(now time.Time, eff int64) *rate.Limiter {
	l := r.l
	b := r.c.bytes.Load()
	if b == nil {
		nb := rate.NewLimiter(rate.Limit(eff), l.s.burstFor(eff))
		if r.c.bytes.CompareAndSwap(nil, nb) {
			return nb
		}
		b = r.c.bytes.Load()
	}
	if b.Limit() != rate.Limit(eff) {
		b.SetLimitAt(now, rate.Limit(eff))
		if nb := l.s.burstFor(eff); b.Burst() != nb {
			b.SetBurstAt(now, nb)
		}
	}
	return b
}

// Close wakes a waiting Read and closes body. It is idempotent.
func (r *shapedReader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.cancel()
	return r.body.Close()
}
