package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sync/singleflight"
)

// readyTTL is how long one origin check answers /readyz. Load balancers
// and orchestrators probe every node, often several of them at once and
// several times a second; without the cache each probe is an origin
// request, so a fleet's health checks alone load the store. A second is
// short against any probe period that acts on the answer (failure
// thresholds count several probes), so the answer is still current.
const readyTTL = time.Second

// readyTimeout bounds one origin check.
const readyTimeout = 3 * time.Second

// readiness remembers the last origin check behind /readyz for readyTTL
// and runs at most one check at a time: callers that arrive while one is
// in flight share its result (groupcache's load: singleflight, with the
// cache consulted again inside the flight). Failures are cached like
// successes, so an origin that is down is not probed harder by the
// checks.
type readiness struct {
	now   func() time.Time // nil: time.Now; tests substitute a fake clock
	group singleflight.Group

	mu sync.Mutex
	at time.Time // when the cached result was obtained; zero: none yet
	ok bool
}

// check reports whether the origin answered ping, within readyTTL.
func (r *readiness) check(ping func(context.Context) error) bool {
	if ok, fresh := r.cached(); fresh {
		return ok
	}
	v, _, _ := r.group.Do("", func() (any, error) {
		// A flight that finished just before this one began has an
		// answer already.
		if ok, fresh := r.cached(); fresh {
			return ok, nil
		}
		// Detached from the probing request: its result serves the others.
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		ok := ping(ctx) == nil
		r.mu.Lock()
		r.at, r.ok = r.clock(), ok
		r.mu.Unlock()
		return ok, nil
	})
	return v.(bool)
}

// cached returns the last result and whether it is younger than readyTTL.
// A clock that went backwards makes the result stale, never eternal.
func (r *readiness) cached() (ok, fresh bool) {
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	age := now.Sub(r.at)
	return r.ok, !r.at.IsZero() && age >= 0 && age < readyTTL
}

func (r *readiness) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// ready answers /readyz: 200 when the origin answered its last check, 503
// otherwise. The check is at most readyTTL old. With a catalog database
// the body also says whether it answered ({"status":"ok","catalog":"ok"}
// or "unavailable"): the node stays ready without it, serving the ids
// Redis and memory hold, and operators see the degradation.
func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	if !s.readiness.check(s.origin.Ping) {
		writeError(ctx, errNotReady)
		return
	}
	ctx.Response.Header.SetContentTypeBytes(hdrContentTypeJSON)
	if s.catalogStore == nil {
		ctx.Response.SetBodyRaw(bodyOK)
		return
	}
	if s.catalogReady.check(s.catalogStore.Ping) {
		ctx.Response.SetBodyRaw(bodyCatalogOK)
	} else {
		ctx.Response.SetBodyRaw(bodyCatalogDown)
	}
}

var (
	bodyCatalogOK   = []byte(`{"status":"ok","catalog":"ok"}` + "\n")
	bodyCatalogDown = []byte(`{"status":"ok","catalog":"unavailable"}` + "\n")
)
