package origin

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxBackoff caps one wait between attempts, so that a large RetryBackoff or
// many retries cannot hold a request for longer than a client would wait.
const maxBackoff = 2 * time.Second

// retrier runs an operation again after transient failures (see retryable).
// minio-go's own retry loop is switched off (Options.MaxRetries = 1) so that
// this is the only one, with our limits and our notion of transient.
type retrier struct {
	retries int           // attempts after the first; 0 means none
	base    time.Duration // wait before the first retry, doubled each time
}

// do calls op until it succeeds, fails with a final error, the retries are
// spent, or ctx ends. It returns op's last error, never a bare ctx error, so
// that the caller sees what the store said.
func (r retrier) do(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || attempt >= r.retries || !retryable(err) {
			return err
		}
		t := time.NewTimer(r.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff is the wait before retry number attempt+1: exponential with
// "equal jitter" (half fixed, half random), so that many edges retrying
// after the same origin hiccup do not arrive in lockstep, yet each still
// waits at least half the nominal time.
func (r retrier) backoff(attempt int) time.Duration {
	d := r.base
	for range attempt {
		if d >= maxBackoff {
			break
		}
		d *= 2
	}
	d = min(d, maxBackoff)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}
