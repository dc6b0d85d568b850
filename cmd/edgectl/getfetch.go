package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgeproxy/edgeproxy/internal/byteranges"
)

// errChanged means the server answered for another version of the object
// than the one being fetched: a 200 to a ranged request with If-Range, or
// a 206 with another ETag or length.
var errChanged = errors.New("the object changed on the server")

// getter is one edgectl get: the output file, its state, the queue of
// pieces and the connections working on them.
type getter struct {
	hc        *http.Client
	u         *url.URL
	bearer    string
	conns     int
	out       string
	statePath string
	bar       *progressBar

	f       *os.File
	created bool     // the output did not exist before this run
	st      getState // URL, ETag, Size; Done is kept in done

	mu     sync.Mutex
	done   byteranges.Set         // on disk (written; fsync'd at the next checkpoint); guarded by mu
	active map[*inflight]struct{} // pieces being fetched; guarded by mu
	queue  []span                 // pieces not yet handed out; guarded by mu
	// firstPiece is the piece the probe's open response answers.
	firstPiece span
	savedAt    int64 // bytes the state file last claimed; guarded by mu

	received    atomic.Int64 // body bytes fetched by this run
	resumedFrom int64        // bytes on disk when the run began
	// base and receivedAtBase are the bytes on disk and received when the
	// current attempt began: the progress bar's origin.
	base, receivedAtBase int64
}

// inflight is one piece being fetched: bytes [start, start+n) are written.
type inflight struct {
	start int64
	n     atomic.Int64
}

func (g *getter) run(ctx context.Context) (err error) {
	f, st, err := g.open()
	if err != nil {
		return err
	}
	g.f = f
	defer f.Close()
	defer func() {
		if err != nil && g.created && g.st.ETag == "" {
			os.Remove(g.out) // nothing fetched, nothing to resume: leave no empty file
		}
	}()
	if st != nil {
		g.st = *st
		g.done = *st.spans()
		g.resumedFrom = g.done.Total()
	}
	for restarts := 0; ; restarts++ {
		err := g.attempt(ctx)
		if !errors.Is(err, errChanged) {
			return err
		}
		if restarts == maxRestarts {
			return exitf(exitChanged, "get %s: %v during the download %d times; giving up", redactURL(g.u), errChanged, restarts+1)
		}
		// Forget the old version durably before its bytes go, so that a
		// kill -9 in between never resumes into a splice.
		if err := removeState(g.statePath); err != nil {
			return exitf(exitLocal, "get: %v", err)
		}
		if err := f.Truncate(0); err != nil {
			return exitf(exitLocal, "get: truncate %s: %v", g.out, err)
		}
		g.mu.Lock()
		g.st, g.done, g.savedAt = getState{}, byteranges.Set{}, 0
		g.mu.Unlock()
		g.resumedFrom = 0
	}
}

// open opens the output and, when it is a partial download of this URL,
// its state. A state file of another URL is refused rather than
// overwritten: the operator may have pointed -o at the wrong file.
func (g *getter) open() (*os.File, *getState, error) {
	st, err := loadState(g.statePath)
	if err != nil {
		return nil, nil, exitf(exitLocal, "get: %v (remove it to start over)", err)
	}
	if st != nil && st.URL != urlIdentity(g.u) {
		return nil, nil, exitf(exitLocal, "get: %s belongs to a download of %s; remove it or choose another -o", g.statePath, st.URL)
	}
	// No O_TRUNC: an existing file is only cut once the server answered
	// (probe), so a refused token does not destroy it.
	_, statErr := os.Stat(g.out)
	g.created = errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(g.out, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, exitf(exitLocal, "get: %v", err)
	}
	if st != nil {
		fi, err := f.Stat()
		if err != nil || fi.Size() != st.Size {
			// The file was replaced or cut since: its claimed bytes are gone.
			f.Truncate(0)
			st = nil
		}
	}
	return f, st, nil
}

// attempt fetches everything missing of one version of the object.
func (g *getter) attempt(ctx context.Context) error {
	g.base, g.receivedAtBase = g.done.Total(), g.received.Load()
	if g.st.ETag == "" {
		first, err := g.probeRetrying(ctx)
		if err != nil || first == nil { // nil: fetched in one stream
			return err
		}
		g.queue = pieces(g.done.Missing(g.st.Size), getPieceSize)
		// The probe's answer is the first piece: it is taken out of the
		// queue here, before any connection could take it.
		g.firstPiece, g.queue = g.queue[0], g.queue[1:]
		return g.fetchAll(ctx, first)
	}
	g.queue = pieces(g.done.Missing(g.st.Size), getPieceSize)
	return g.fetchAll(ctx, nil)
}

// probeRetrying is probe, retried like a piece after transient failures.
func (g *getter) probeRetrying(ctx context.Context) (*http.Response, error) {
	backoff := getBackoff
	for tries := 0; ; tries++ {
		resp, err := g.probe(ctx)
		if err == nil || ctx.Err() != nil || !retryable(err) || tries >= getRetries {
			if err != nil {
				if _, ok := errors.AsType[exitError](err); !ok {
					err = exitf(exitFailed, "get %s: %v", redactURL(g.u), err)
				}
			}
			return resp, err
		}
		if !pause(ctx, &backoff) {
			return nil, exitf(exitFailed, "get %s: %v", redactURL(g.u), ctx.Err())
		}
	}
}

// pause waits *backoff before a retry, then doubles it up to 5s; it
// reports false, at once, when ctx ends first.
func pause(ctx context.Context, backoff *time.Duration) bool {
	select {
	case <-time.After(*backoff):
	case <-ctx.Done():
		return false
	}
	*backoff = min(*backoff*2, 5*time.Second)
	return true
}

// probe asks for the first piece without If-Range, to learn the size and
// the ETag. It returns the open 206 response of the first piece; or nil
// after fetching the whole object in one stream, when the server offers
// no ranges or no strong ETag.
func (g *getter) probe(ctx context.Context) (*http.Response, error) {
	resp, err := g.send(ctx, span{Start: 0, End: getPieceSize}, "")
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		first, _, size, err := parseContentRange(resp.Header.Get("Content-Range"))
		etag := resp.Header.Get("ETag")
		if err != nil || first != 0 {
			resp.Body.Close()
			return nil, exitf(exitFailed, "get %s: 206 with Content-Range %q", redactURL(g.u), resp.Header.Get("Content-Range"))
		}
		if !isStrongETag(etag) {
			resp.Body.Close()
			return nil, g.whole(ctx, nil)
		}
		g.st = getState{URL: urlIdentity(g.u), ETag: etag, Size: size}
		if err := g.f.Truncate(size); err != nil {
			resp.Body.Close()
			return nil, exitf(exitLocal, "get: size %s: %v", g.out, err)
		}
		if err := g.checkpoint(); err != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp, nil
	case http.StatusOK:
		return nil, g.whole(ctx, resp)
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, g.whole(ctx, nil) // an empty object has no byte 0
	default:
		return nil, httpError(resp)
	}
}

// whole downloads the object in one stream without resume: the server
// ignores ranges or gives no strong validator to splice ranges safely.
func (g *getter) whole(ctx context.Context, resp *http.Response) error {
	if resp == nil {
		req, err := g.request(ctx)
		if err != nil {
			return exitf(exitFailed, "get %s: %v", redactURL(g.u), err)
		}
		resp, err = g.hc.Do(req)
		if err != nil {
			return exitf(exitFailed, "get %s: %v", redactURL(g.u), unwrapURLError(err))
		}
		if resp.StatusCode != http.StatusOK {
			return exitf(exitFailed, "get %s: %v", redactURL(g.u), httpError(resp))
		}
	}
	defer resp.Body.Close()
	g.st = getState{URL: urlIdentity(g.u), ETag: resp.Header.Get("ETag"), Size: resp.ContentLength}
	if err := g.f.Truncate(0); err != nil {
		return exitf(exitLocal, "get: %v", err)
	}
	if g.bar != nil && resp.ContentLength >= 0 {
		g.bar.setTotal(resp.ContentLength)
	}
	a := &inflight{}
	g.track(a, true)
	err := g.copyBody(ctx, resp.Body, a, resp.ContentLength)
	g.track(a, false)
	if err != nil && !errors.Is(err, io.EOF) {
		return exitf(exitFailed, "get %s: %v (the server offers no resume)", redactURL(g.u), err)
	}
	if resp.ContentLength >= 0 && a.n.Load() != resp.ContentLength {
		return exitf(exitFailed, "get %s: %d of %d bytes", redactURL(g.u), a.n.Load(), resp.ContentLength)
	}
	g.st.Size = a.n.Load()
	if err := g.f.Sync(); err != nil {
		return exitf(exitLocal, "get: sync %s: %v", g.out, err)
	}
	return nil
}

// fetchAll runs the connections over the queue until it is empty, with a
// checkpoint loop beside them. first, when not nil, is the probe's open
// response for the queue's first piece.
func (g *getter) fetchAll(ctx context.Context, first *http.Response) error {
	if g.bar != nil {
		g.bar.setTotal(g.st.Size)
	}
	eg, ectx := errgroup.WithContext(ctx)
	stopCheck := make(chan struct{})
	checkDone := make(chan error, 1)
	go func() { checkDone <- g.checkpointLoop(stopCheck) }()
	for i := range g.conns {
		var r *http.Response
		if i == 0 && first != nil {
			r = first // the queue's first piece, (0, getPieceSize), is its answer
		}
		eg.Go(func() error { return g.worker(ectx, r) })
	}
	err := eg.Wait()
	close(stopCheck)
	if cerr := <-checkDone; err == nil {
		err = cerr
	}
	if err == nil {
		// Complete: the state file is about to go, so no checkpoint (its
		// fsync of the whole file would cost seconds on a large one).
		if g.done.Total() != g.st.Size {
			panic(fmt.Sprintf("bug: %d of %d bytes after all pieces", g.done.Total(), g.st.Size))
		}
		return nil
	}
	// Record what is on disk: the next run resumes there.
	if cerr := g.checkpoint(); cerr != nil && !errors.Is(err, errChanged) {
		err = cerr
	}
	switch {
	case err == nil, errors.Is(err, errChanged):
		return err
	case ctx.Err() != nil:
		return exitf(exitFailed, "get: interrupted with %s of %s on disk; run the same command to resume", fmtBytes(g.done.Total()), fmtBytes(g.st.Size))
	}
	if _, ok := errors.AsType[exitError](err); ok {
		return err
	}
	return exitf(exitFailed, "get %s: %v (%s of %s on disk; run the same command to resume)", redactURL(g.u), err, fmtBytes(g.done.Total()), fmtBytes(g.st.Size))
}

// next hands out the next piece, or false when none is left.
func (g *getter) next() (span, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		return span{}, false
	}
	sp := g.queue[0]
	g.queue = g.queue[1:]
	return sp, true
}

// track adds a to (or removes it from) the pieces in flight; a removed
// piece's written bytes move to done.
func (g *getter) track(a *inflight, add bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active == nil {
		g.active = make(map[*inflight]struct{})
	}
	if add {
		g.active[a] = struct{}{}
		return
	}
	delete(g.active, a)
	g.done.Add(span{Start: a.start, End: a.start + a.n.Load()})
}

// worker fetches pieces until the queue is empty or an error ends the
// download. first, when not nil, is an open response for the first piece.
func (g *getter) worker(ctx context.Context, first *http.Response) error {
	for {
		var sp span
		var ok bool
		if first != nil {
			sp, ok = g.firstPiece, true
		} else if sp, ok = g.next(); !ok {
			return nil
		}
		a := &inflight{start: sp.Start}
		g.track(a, true)
		err := g.fetchPiece(ctx, sp, a, first)
		first = nil
		g.track(a, false)
		if err != nil {
			return err
		}
	}
}

// fetchPiece fetches sp into the file, retrying transient failures from
// the byte reached. resp, when not nil, is an open response for sp.
func (g *getter) fetchPiece(ctx context.Context, sp span, a *inflight, resp *http.Response) error {
	backoff := getBackoff
	for tries := 0; ; tries++ {
		before := a.n.Load()
		err := g.fetchOnce(ctx, span{Start: sp.Start + before, End: sp.End}, a, resp)
		resp = nil
		if err == nil {
			return nil
		}
		if errors.Is(err, errChanged) || ctx.Err() != nil || !retryable(err) {
			return err
		}
		if a.n.Load() > before {
			tries, backoff = 0, getBackoff // progress: a new failure, not the same one
		}
		if tries >= getRetries {
			return err
		}
		if !pause(ctx, &backoff) {
			return ctx.Err()
		}
	}
}

// fetchOnce makes one range request for sp (unless resp is its answer
// already) and writes the body at sp.Start.
func (g *getter) fetchOnce(ctx context.Context, sp span, a *inflight, resp *http.Response) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if resp == nil {
		var err error
		resp, err = g.send(rctx, sp, g.st.ETag)
		if err != nil {
			return err
		}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK, http.StatusRequestedRangeNotSatisfiable:
		// If-Range did not match (or the object shrank): another version.
		return errChanged
	default:
		return httpError(resp)
	}
	first, last, size, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return fmt.Errorf("206 with Content-Range %q", resp.Header.Get("Content-Range"))
	}
	if size != g.st.Size || (resp.Header.Get("ETag") != "" && resp.Header.Get("ETag") != g.st.ETag) {
		return errChanged
	}
	if first != sp.Start || last != sp.End-1 {
		return fmt.Errorf("asked for bytes %d-%d, got %d-%d", sp.Start, sp.End-1, first, last)
	}
	// A stalled connection is cut and the piece retried from where it got.
	stall := time.AfterFunc(getStall, cancel)
	defer stall.Stop()
	return g.copyBodyStall(ctx, resp.Body, a, sp.Len(), stall)
}

func (g *getter) copyBody(ctx context.Context, body io.Reader, a *inflight, n int64) error {
	return g.copyBodyStall(ctx, body, a, n, nil)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyBodyStall writes body at a.start+a.n onwards, advancing a.n after each
// write (the checkpoint reads it), until n bytes (n < 0: EOF) arrived.
func (g *getter) copyBodyStall(ctx context.Context, body io.Reader, a *inflight, n int64, stall *time.Timer) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var got int64
	for n < 0 || got < n {
		want := buf
		if n >= 0 && int64(len(want)) > n-got {
			want = want[:n-got]
		}
		m, rerr := body.Read(want)
		if m > 0 {
			if _, err := g.f.WriteAt(want[:m], a.start+a.n.Load()); err != nil {
				return exitf(exitLocal, "get: write %s: %v", g.out, err)
			}
			a.n.Add(int64(m))
			got += int64(m)
			g.received.Add(int64(m))
			if stall != nil {
				stall.Reset(getStall)
			}
		}
		if rerr == io.EOF {
			if n < 0 {
				return nil
			}
			if got < n {
				return io.ErrUnexpectedEOF
			}
			break
		}
		if rerr != nil {
			if ctx.Err() == nil && stall != nil && errors.Is(rerr, context.Canceled) {
				return fmt.Errorf("no bytes for %s: %w", getStall, os.ErrDeadlineExceeded)
			}
			return rerr
		}
	}
	return nil
}

// checkpointLoop saves the state every getCheckpoint until stop closes.
func (g *getter) checkpointLoop(stop <-chan struct{}) error {
	t := time.NewTicker(getCheckpoint)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-t.C:
			if err := g.checkpoint(); err != nil {
				return err
			}

		}
	}
}

// onDisk is the bytes written so far, for the progress bar.
func (g *getter) onDisk() int64 { return g.base + g.received.Load() - g.receivedAtBase }

// checkpoint makes the state file claim what is written now. Order
// matters: the claimed spans are read first, then the file is fsync'd,
// then the state replaced; so every claimed byte is on disk before the
// claim is.
func (g *getter) checkpoint() error {
	g.mu.Lock()
	s := g.done.Clone()
	for a := range g.active {
		s.Add(span{Start: a.start, End: a.start + a.n.Load()})
	}
	unchanged := g.savedAt == s.Total() && g.savedAt != 0
	st := getState{URL: g.st.URL, ETag: g.st.ETag, Size: g.st.Size}
	g.mu.Unlock()
	if unchanged || !isStrongETag(st.ETag) {
		return nil
	}
	if err := g.f.Sync(); err != nil {
		return exitf(exitLocal, "get: sync %s: %v", g.out, err)
	}
	st.setSpans(&s)
	if err := saveState(g.statePath, &st); err != nil {
		return exitf(exitLocal, "get: %v", err)
	}
	g.mu.Lock()
	g.savedAt = s.Total()
	g.mu.Unlock()
	return nil
}

// request builds a GET of the URL with the bearer token, if any.
func (g *getter) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.u.String(), nil)
	if err != nil {
		return nil, err
	}
	if g.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+g.bearer)
	}
	req.Header.Set("User-Agent", "edgectl")
	return req, nil
}

// send requests bytes sp, with If-Range: etag when etag is not empty.
func (g *getter) send(ctx context.Context, sp span, etag string) (*http.Response, error) {
	req, err := g.request(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(sp.Start, 10)+"-"+strconv.FormatInt(sp.End-1, 10))
	if etag != "" {
		req.Header.Set("If-Range", etag)
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	return resp, nil
}

// unwrapURLError drops *url.Error's wrapping: its text repeats the URL,
// token or signature included.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// statusError is a non-2xx answer, with the proxy's JSON error code.
type statusError struct {
	status     int
	text       string
	retryAfter time.Duration // Retry-After in seconds, when given
}

func (e *statusError) Error() string { return e.text }

// httpError reads resp's error body (bounded) into a statusError and
// closes it.
func httpError(resp *http.Response) error {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	text := resp.Status
	if resp.StatusCode == 460 { // tus checksum extension; net/http has no text for it
		text = "460 Checksum Mismatch"
	}
	if json.Unmarshal(data, &body) == nil && body.Code != "" {
		text += ": " + body.Code
		if body.Message != "" {
			text += ": " + body.Message
		}
	}
	se := &statusError{status: resp.StatusCode, text: text}
	if secs, err := parseDigits(resp.Header.Get("Retry-After")); err == nil {
		se.retryAfter = time.Duration(min(secs, 300)) * time.Second
	}
	return se
}

// retryable tells transient failures (network, 5xx, 408, 429) from final
// ones (other 4xx, local errors).
func retryable(err error) bool {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.status >= 500 || se.status == http.StatusRequestTimeout || se.status == http.StatusTooManyRequests
	}
	if _, ok := errors.AsType[exitError](err); ok {
		return false
	}
	return !errors.Is(err, syscall.ENOSPC)
}
