package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
)

// The tests of Do run in a synctest bubble: the back-off timers run on the
// bubble's fake time, so "no back-off" and "cancelled before the back-off
// ended" are exact (the bubble's clock did not move), never a wall-clock
// tolerance. The endpoints are never dialled: op is the fault injector,
// and it learns which endpoint it was given from the client's host.

// faults is a scripted op for Do: each call records the endpoint it was
// given and answers what fail returns for it (nil: success).
type faults struct {
	mu    sync.Mutex
	hosts []string
	fail  func(call int, host string) error
}

func (f *faults) op(c *minio.Core) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	host := c.EndpointURL().Host
	f.hosts = append(f.hosts, host)
	return f.fail(len(f.hosts), host)
}

func (f *faults) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.hosts...)
}

var (
	errRefused    = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	errUnavail    = minio.ErrorResponse{Code: "ServiceUnavailable", StatusCode: http.StatusServiceUnavailable}
	errDenied     = minio.ErrorResponse{Code: minio.AccessDenied, StatusCode: http.StatusForbidden}
	errNoUpload   = minio.ErrorResponse{Code: "NoSuchUpload", StatusCode: http.StatusNotFound}
	errClientMade = minio.ErrorResponse{Code: "InvalidArgument", Message: "part number out of range"}
)

// A transient failure (5xx, a refused or reset connection, a body cut
// short) is retried, with the back-off once every endpoint was tried, and
// the call succeeds; op runs again each time, so it can make a new body.
func TestDoTransientThenSuccess(t *testing.T) {
	for _, transient := range []error{errUnavail, errRefused, io.ErrUnexpectedEOF} {
		synctest.Test(t, func(t *testing.T) {
			s := poolS3(t, fakeclock.New(), func(c *S3Config) { c.RetryBackoff = time.Second }, "a:1")
			f := &faults{fail: func(call int, _ string) error {
				if call <= 2 {
					return transient
				}
				return nil
			}}
			start := time.Now()
			if err := s.Do(context.Background(), f.op); err != nil {
				t.Fatalf("%v then success: Do = %v", transient, err)
			}
			if n := len(f.calls()); n != 3 {
				t.Fatalf("%v: op ran %d times, want 3", transient, n)
			}
			// One endpoint: each retry waited a back-off, at least half of
			// 1s and then of 2s (equal jitter).
			if waited := time.Since(start); waited < 1500*time.Millisecond {
				t.Fatalf("%v: retries after %v of back-off, want at least 1.5s", transient, waited)
			}
		})
	}
}

// The retries are spent after S3Config.Retries: the last error comes back
// unwrapped, so that minio.ToErrorResponse reads the store's code.
func TestDoRetriesSpent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := poolS3(t, fakeclock.New(), func(c *S3Config) { c.Retries = 3 }, "a:1", "b:1")
		f := &faults{fail: func(int, string) error { return errUnavail }}
		err := s.Do(context.Background(), f.op)
		if minio.ToErrorResponse(err).Code != "ServiceUnavailable" {
			t.Fatalf("Do = %v, want the store's 503 unwrapped", err)
		}
		if n := len(f.calls()); n != 4 {
			t.Fatalf("op ran %d times, want 1 + 3 retries", n)
		}
	})
}

// A final answer (403, 404 NoSuchUpload, an error minio-go made up before
// sending, a timeout, the caller's cancellation) is not retried, also when
// other endpoints are left to try.
func TestDoPermanent(t *testing.T) {
	for _, final := range []error{errDenied, errNoUpload, errClientMade, context.DeadlineExceeded, context.Canceled} {
		synctest.Test(t, func(t *testing.T) {
			s := poolS3(t, fakeclock.New(), nil, "a:1", "b:1", "c:1")
			f := &faults{fail: func(int, string) error { return final }}
			if err := s.Do(context.Background(), f.op); !errors.Is(err, final) {
				t.Fatalf("Do = %v, want %v", err, final)
			}
			if n := len(f.calls()); n != 1 {
				t.Fatalf("%v: op ran %d times, want 1", final, n)
			}
		})
	}
}

// A 403 stays final while the pool doubts 404s (a node just failed); a
// 404 is confirmed once then, on another endpoint, as for reads.
func TestDoPermanentDoubtfulPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := poolS3(t, fakeclock.New(), nil, "a:1", "b:1", "c:1")
		s.pool.sawTrouble()
		f := &faults{fail: func(int, string) error { return errDenied }}
		if err := s.Do(context.Background(), f.op); !errors.Is(err, errDenied) || len(f.calls()) != 1 {
			t.Fatalf("403 in a doubtful pool: %v after %d calls, want it after 1", err, len(f.calls()))
		}
		f = &faults{fail: func(int, string) error { return errNoUpload }}
		if err := s.Do(context.Background(), f.op); !errors.Is(err, errNoUpload) {
			t.Fatalf("404 in a doubtful pool: %v", err)
		}
		if h := f.calls(); len(h) != 2 || h[0] == h[1] {
			t.Fatalf("404 in a doubtful pool asked %q, want two different endpoints", h)
		}
	})
}

// Cancelling ctx during the back-off ends Do at once (the bubble's clock
// has not moved), with the store's last answer and no further attempt.
func TestDoCancelledMidBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := poolS3(t, fakeclock.New(), func(c *S3Config) { c.RetryBackoff = time.Second }, "a:1")
		f := &faults{fail: func(int, string) error { return errUnavail }}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- s.Do(ctx, f.op) }()
		synctest.Wait() // Do is blocked in the back-off after the first attempt
		select {
		case err := <-done:
			t.Fatalf("Do returned before the back-off: %v", err)
		default:
		}
		if n := len(f.calls()); n != 1 {
			t.Fatalf("op ran %d times before the back-off, want 1", n)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if minio.ToErrorResponse(err).Code != "ServiceUnavailable" {
				t.Fatalf("Do = %v, want the store's last answer", err)
			}
		default:
			t.Fatal("Do still waiting after ctx was cancelled")
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Do waited %v of back-off after the cancel, want none", d)
		}
		if n := len(f.calls()); n != 1 {
			t.Fatalf("op ran %d times, want no attempt after the cancel", n)
		}
	})
}

// A node that refuses connections fails over to another endpoint at once
// (no back-off) and every call succeeds; its failures count, so that after
// EjectAfter of them it is ejected and asked no more.
func TestDoFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := poolS3(t, fakeclock.New(), func(c *S3Config) { c.EjectAfter = 2; c.RetryBackoff = time.Second }, "a:1", "b:1", "c:1")
		f := &faults{fail: func(_ int, host string) error {
			if host == "a:1" {
				return errRefused
			}
			return nil
		}}
		start := time.Now()
		for i := range 12 {
			before := len(f.calls())
			if err := s.Do(context.Background(), f.op); err != nil {
				t.Fatalf("Do %d = %v", i, err)
			}
			h := f.calls()[before:]
			if h[len(h)-1] == "a:1" || len(h) > 2 || (len(h) == 2 && h[0] != "a:1") {
				t.Fatalf("Do %d asked %q, want the dead node at most once, first", i, h)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("failover waited %v, want no back-off", d)
		}
		st := s.Endpoints()
		if st[0].Failures != 2 || st[0].Ejections != 1 || st[0].Up {
			t.Fatalf("dead node after 12 calls: %+v, want 2 failures and ejected", st[0])
		}
		if st[1].Failures != 0 || st[2].Failures != 0 {
			t.Fatalf("live nodes counted failures: %+v", st)
		}
	})
}

// An attempt that succeeds slowly (it sent a large body) does not count
// against its endpoint under Do, while the same duration does for a read.
func TestDoSlowBodyNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := poolS3(t, fakeclock.New(), func(c *S3Config) { c.SlowThreshold = time.Second }, "a:1")
		slow := func(*minio.Core) error { time.Sleep(10 * time.Second); return nil }
		for range 3 {
			if err := s.Do(context.Background(), slow); err != nil {
				t.Fatal(err)
			}
		}
		if st := s.Endpoints()[0]; st.Failures != 0 || !st.Up {
			t.Fatalf("after slow uploads: %+v, want no failure", st)
		}
		// The same duration through the read path is a slow answer.
		s.pool.attempt(s.pool.eps[0], s.pool.slow, func(e *endpoint) error { return slow(e.core) })
		if st := s.Endpoints()[0]; st.Failures != 1 {
			t.Fatalf("a slow read: %+v, want one failure", st)
		}
	})
}
