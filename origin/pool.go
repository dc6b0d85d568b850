package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
)

// A distributed MinIO answers for every object on every node, so the edge
// can address the nodes directly instead of through a load balancer. The
// pool below keeps one client per node and decides, per attempt, which
// node to ask:
//
//   - Active checks: every HealthInterval each endpoint's
//     /minio/health/live is fetched; a failed check takes the endpoint out
//     at once, a passing one brings it back (unless it is ejected). A
//     check that passes after a failed one also ends an ejection: the
//     node was restarted.
//   - Passive ejection (outlier detection, after Envoy's
//     consecutive_gateway_failure): EjectAfter consecutive transient
//     failures or slow answers eject an endpoint for EjectTime, doubled at
//     each further ejection up to MaxEjectTime; a success resets the count.
//   - Spreading: among healthy endpoints the one with the fewest requests in
//     flight, ties broken round robin. When none is healthy every endpoint
//     is tried anyway (Envoy's "panic mode"): an edge that refuses to try is
//     worse than one that tries a node that may have come back.
//   - Failover: an attempt that fails transiently is retried on an endpoint
//     this request has not tried yet, at once; only when all were tried
//     does the next attempt wait for the back-off.
//   - Doubted 404s: for a moment after one of its nodes dies, a live node
//     of a distributed MinIO can answer NoSuchKey for an object that
//     exists (its read of the object's metadata still counts the dead
//     node's drive; see TestPoolNoFalseNotFoundOnKill). A 404 is final for
//     the edge and its negative cache, so while the pool has seen trouble
//     recently (a failed attempt or active check within doubtWindow) a
//     404 from the store is confirmed once on another endpoint after a
//     short back-off. A healthy pool answers 404s with one request.

// Defaults of the pool settings in S3Config.
const (
	DefaultHealthInterval = 5 * time.Second
	DefaultEjectAfter     = 3
	DefaultEjectTime      = 5 * time.Second
	DefaultMaxEjectTime   = 5 * time.Minute
	DefaultSlowThreshold  = 5 * time.Second
)

// minDoubtWindow is how long after a failed attempt or active check a 404
// is doubted at least (twice the health interval when that is longer, so
// that a node that stays down keeps the pool doubtful between its failed
// checks). MinIO takes a few seconds to mark a dead node's drives offline;
// the false 404s seen in tests came within the first second of a kill.
const minDoubtWindow = 10 * time.Second

// EndpointStat is one endpoint's state and counters, for metrics.
type EndpointStat struct {
	// Endpoint is host:port as configured.
	Endpoint string
	// Up: the last active check passed and the endpoint is not ejected.
	Up bool
	// InFlight is how many requests are waiting for its answer or
	// streaming its bodies now.
	InFlight int64
	// Requests, Failures and Ejections count since start: attempts sent,
	// attempts that failed transiently or slowly, and passive ejections.
	Requests, Failures, Ejections int64
}

// endpoint is one node of the pool.
type endpoint struct {
	addr string
	core *minio.Core

	inflight                      atomic.Int64
	suspect                       atomic.Bool // the peer closed a connection; a check runs (watch.go)
	requests, failures, ejections atomic.Int64

	mu           sync.Mutex
	down         bool      // the last active check failed
	consecutive  int       // transient failures in a row
	ejectedUntil time.Time // passive ejection ends
	strikes      int       // ejections in a row, for the growing back-off
}

// healthyLocked reports whether the endpoint should receive requests at now.
func (e *endpoint) healthyLocked(now time.Time) bool {
	return !e.down && !now.Before(e.ejectedUntil)
}

// unejectLocked ends a passive ejection and forgets its strikes. An active
// check that passes after one that failed calls it: the node was down and
// has come back (a restart), so the failures that ejected it say nothing
// of the new process (Envoy's successful_active_health_check_uneject_host).
// A node ejected for slowness whose checks keep passing stays ejected.
func (e *endpoint) unejectLocked() {
	e.ejectedUntil = time.Time{}
	e.strikes = 0
	e.consecutive = 0
}

// pool chooses endpoints and keeps their health. It is safe for concurrent use.
type pool struct {
	eps        []*endpoint
	now        func() time.Time
	ejectAfter int
	ejectTime  time.Duration
	maxEject   time.Duration
	slow       time.Duration
	rr         atomic.Uint64

	// trouble is when (p.now, UnixNano) an attempt or an active check last
	// failed; 0 before any. Within doubtWindow of it a 404 is confirmed.
	trouble     atomic.Int64
	doubtWindow time.Duration

	// health checks
	hc       *http.Client
	scheme   string
	interval time.Duration
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	running  atomic.Bool // run was started; close waits for done
}

// pick returns the endpoint for the next attempt, skipping those in tried
// (a bit set over eps), and whether it was healthy. It returns nil when
// every endpoint was tried.
func (p *pool) pick(tried uint64) *endpoint {
	now := p.now()
	start := int(p.rr.Add(1) % uint64(len(p.eps)))
	var best, fallback *endpoint
	var bestLoad int64
	for i := range p.eps {
		j := (start + i) % len(p.eps)
		if tried&(1<<j) != 0 {
			continue
		}
		e := p.eps[j]
		e.mu.Lock()
		ok := e.healthyLocked(now)
		e.mu.Unlock()
		if !ok {
			if fallback == nil {
				fallback = e
			}
			continue
		}
		if load := e.inflight.Load(); best == nil || load < bestLoad {
			best, bestLoad = e, load
		}
	}
	if best != nil {
		return best
	}
	return fallback
}

func (p *pool) index(e *endpoint) int {
	for i, x := range p.eps {
		if x == e {
			return i
		}
	}
	panic("bug: endpoint not in pool")
}

// report records the outcome of one attempt on e that took d; one that
// took longer than slow counts as a failure (0: none does; p.slow for
// calls whose duration is the node's latency).
func (p *pool) report(e *endpoint, err error, d, slow time.Duration) {
	// A body cut short (io.ErrUnexpectedEOF: the node closed or crashed
	// mid-body) is the node failing as much as a reset is.
	failed := err != nil && (retryable(err) || errors.Is(err, io.ErrUnexpectedEOF) || classify(err) == ErrTimeout)
	if !failed && slow > 0 && d > slow {
		failed = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !failed {
		e.consecutive = 0
		if !e.down && !p.now().Before(e.ejectedUntil) {
			e.strikes = 0
		}
		return
	}
	e.failures.Add(1)
	p.sawTrouble()
	e.consecutive++
	if e.consecutive < p.ejectAfter {
		return
	}
	now := p.now()
	if now.Before(e.ejectedUntil) {
		return // already out; late answers of requests sent before
	}
	d = p.ejectTime << min(e.strikes, 20)
	e.ejectedUntil = now.Add(min(d, p.maxEject))
	e.strikes++
	e.consecutive = 0
	e.ejections.Add(1)
}

// sawTrouble records that an endpoint failed now.
func (p *pool) sawTrouble() { p.trouble.Store(p.now().UnixNano()) }

// doubtful reports whether an endpoint failed within doubtWindow or is
// suspect now (watch.go), so that a 404 may be a live node's answer while
// a dead one's drives still count.
func (p *pool) doubtful() bool {
	if t := p.trouble.Load(); t != 0 && p.now().Sub(time.Unix(0, t)) < p.doubtWindow {
		return true
	}
	for _, e := range p.eps {
		if e.suspect.Load() {
			return true
		}
	}
	return false
}

// storeNotFound reports whether err is the store's own 404 (NoSuchKey,
// NoSuchBucket, a bodiless HEAD 404), not a name the client library
// rejected before sending.
func storeNotFound(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound
}

// do runs op on endpoints until it succeeds, fails with a final error, or
// retries+1 attempts are spent. Failover to an untried endpoint is
// immediate; the back-off applies only once every endpoint was tried. A
// 404 while the pool is doubtful is confirmed by one more attempt (not
// counted against the retries) after the first back-off, on an endpoint
// not tried yet when there is one: a second 404 is final, a success wins.
func (p *pool) do(ctx context.Context, r retrier, op func(*endpoint) error) error {
	return p.doFrom(ctx, r, 0, p.slow, op)
}

// doFrom is do with the endpoints in tried skipped at first (a resumed
// body avoids the endpoint that just failed it), and slow as the threshold
// above which an attempt that succeeded still counts as a failure of its
// endpoint: p.slow for reads; 0 for calls whose duration is their body's
// transfer, not the node's latency.
func (p *pool) doFrom(ctx context.Context, r retrier, tried uint64, slow time.Duration, op func(*endpoint) error) error {
	waits := 0
	confirmed := false
	var err error
	for attempt := 0; ; attempt++ {
		e := p.pick(tried)
		if e == nil {
			tried = 0
			t := time.NewTimer(r.backoff(waits))
			waits++
			select {
			case <-ctx.Done():
				// The store's last answer says more than ctx's error.
				t.Stop()
				if err == nil {
					err = ctx.Err()
				}
				return err
			case <-t.C:
			}
			e = p.pick(tried)
		}
		tried |= 1 << p.index(e)
		err = p.attempt(e, slow, op)
		if err != nil && !confirmed && storeNotFound(err) && p.doubtful() {
			confirmed = true
			if !sleepCtx(ctx, r.backoff(0)) {
				// Not a 404 the caller may cache: it was not confirmed.
				return ctx.Err()
			}
			if p.pick(tried) == nil {
				tried = 0 // one endpoint (a balancer): ask it again
			}
			attempt--
			continue
		}
		if err == nil || attempt >= r.retries || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
}

// sleepCtx waits d, or less when ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// attempt runs op once on e, counting it, with slow as report's threshold.
func (p *pool) attempt(e *endpoint, slow time.Duration, op func(*endpoint) error) error {
	e.requests.Add(1)
	e.inflight.Add(1)
	start := time.Now()
	err := op(e)
	e.inflight.Add(-1)
	p.report(e, err, time.Since(start), slow)
	return err
}

// healthy reports whether at least one endpoint is up now.
func (p *pool) healthy() bool {
	now := p.now()
	for _, e := range p.eps {
		e.mu.Lock()
		ok := e.healthyLocked(now)
		e.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// checkAll runs one active check of every endpoint, concurrently.
func (p *pool) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range p.eps {
		wg.Go(func() {
			err := p.check(ctx, e)
			if err != nil {
				p.sawTrouble()
			}
			e.mu.Lock()
			if err == nil && e.down {
				e.unejectLocked()
			}
			e.down = err != nil
			e.mu.Unlock()
		})
	}
	wg.Wait()
}

// check fetches MinIO's liveness probe, which answers 200 without
// authentication as long as the node's server runs.
func (p *pool) check(ctx context.Context, e *endpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.scheme+"://"+e.addr+"/minio/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin: health %s: status %d", e.addr, resp.StatusCode)
	}
	return nil
}

// run checks every interval until close. tick is the ticker's channel
// (a test passes its own).
func (p *pool) run(tick <-chan time.Time) {
	p.running.Store(true)
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.stop
		cancel()
	}()
	for {
		select {
		case <-p.stop:
			return
		case <-tick:
			p.checkAll(ctx)
		}
	}
}

// start launches the health-check loop on a real ticker.
func (p *pool) start() {
	p.running.Store(true)
	t := time.NewTicker(p.interval)
	go func() {
		<-p.done
		t.Stop()
	}()
	go p.run(t.C)
}

func (p *pool) close() {
	p.stopOnce.Do(func() {
		close(p.stop)
		if p.running.Load() {
			<-p.done
		}
	})
}

// stats returns every endpoint's state.
func (p *pool) stats() []EndpointStat {
	now := p.now()
	out := make([]EndpointStat, len(p.eps))
	for i, e := range p.eps {
		e.mu.Lock()
		up := e.healthyLocked(now)
		e.mu.Unlock()
		out[i] = EndpointStat{
			Endpoint:  e.addr,
			Up:        up,
			InFlight:  e.inflight.Load(),
			Requests:  e.requests.Load(),
			Failures:  e.failures.Load(),
			Ejections: e.ejections.Load(),
		}
	}
	return out
}

// errNoEndpoint is returned by Ping when every endpoint failed.
var errNoEndpoint = errors.New("no endpoint answered")
