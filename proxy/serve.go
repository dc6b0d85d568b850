package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/cache"
	"github.com/edgeproxy/edgeproxy/internal/disposition"
	"github.com/edgeproxy/edgeproxy/origin"
)

// Header names and values, as bytes so setting them does not allocate.
var (
	hdrAcceptRanges        = []byte("Accept-Ranges")
	hdrBytes               = []byte("bytes")
	hdrETag                = []byte("ETag")
	hdrContentRange        = []byte("Content-Range")
	hdrContentDisposition  = []byte("Content-Disposition")
	hdrCacheControl        = []byte("Cache-Control")
	hdrXCache              = []byte("X-Cache")
	hdrAllow               = []byte("Allow")
	hdrAllowValue          = []byte("GET, HEAD")
	hdrRetryAfter          = []byte("Retry-After")
	hdrWWWAuthenticate     = []byte("WWW-Authenticate")
	hdrBearer              = []byte("Bearer")
	hdrOctetStream         = []byte("application/octet-stream")
	hdrXContentTypeOptions = []byte("X-Content-Type-Options")
	hdrNosniff             = []byte("nosniff")
	hdrMultipartPrefix     = "multipart/byteranges; boundary="

	pathDownload = []byte("/download/")
	pathHealthz  = "/healthz"
	pathReadyz   = "/readyz"

	bodyOK = []byte(`{"status":"ok"}` + "\n")
)

// opTimeout bounds the metadata lookup of one request. The byte stream
// itself is bounded by the send timeout instead, since a large file may
// legitimately take hours.
const opTimeout = 30 * time.Second

// Handler is the fasthttp handler of the download listener. It is the one
// place a response is logged: on the way out for every response answered
// here, or, for a streamed body, when fasthttp closes that body after its
// last byte (trackedBody.Close), so that the line holds the bytes sent.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	var d download
	if s.handle(ctx, &d) {
		s.logRequest(ctx, d.routeName(), d.err)
	}
}

// handle answers the request. It reports whether the access log line is
// still to be written: false for the health probes (never logged) and for
// a streamed body (logged when it closes).
func (s *Server) handle(ctx *fasthttp.RequestCtx, d *download) (log bool) {
	if e := checkRequestBody(&ctx.Request.Header, s.uploadBody(&ctx.Request.Header)); e != nil {
		s.reject(ctx, e)
		d.err = e
		return true
	}
	path := ctx.Request.URI().PathOriginal()
	switch string(path) {
	case pathHealthz:
		ctx.Response.Header.SetContentTypeBytes(hdrContentTypeJSON)
		ctx.Response.SetBodyRaw(bodyOK)
		return false
	case pathReadyz:
		s.ready(ctx)
		return false
	}
	if s.uploadPath(ctx.Request.Header.RequestURI()) {
		d.route = &uploadRoute
		s.uploads.ServeUpload(ctx, s.clientAddr(ctx))
		if ctx.Response.ConnectionClose() {
			// Refused before its body was read: linger, so that the
			// client still sending the body reads the answer instead of
			// a reset.
			lingerOnClose(ctx.Conn())
		}
		return true
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, errMethod)
		ctx.Response.Header.SetCanonical(hdrAllow, hdrAllowValue)
		return true
	}
	if err := s.resolve(ctx, path, d); err != nil {
		s.fail(ctx, d, err)
		return true
	}
	if err := s.authorize(ctx, d); err != nil {
		s.fail(ctx, d, err)
		return true
	}
	if err := s.lookupCatalog(ctx, d); err != nil {
		s.fail(ctx, d, err)
		return true
	}
	if d.route.Mode == ModeRedirect {
		s.redirect(ctx, d)
		return true
	}
	s.serve(ctx, d)
	return !d.streamed
}

// download is what one request resolved to. It lives on the handler's
// stack; strings in it are copies, safe to keep after the handler returns.
type download struct {
	route *route
	// rt is the routing state the request resolved against: its route,
	// keys and limiter come from this one value even if a reload swaps it.
	rt *routing
	// fileID names the file in statistics: the catalog id on /download/,
	// the object key on host routes. Tokens are checked against
	// Server.tokenFileID, which scopes host-route keys to their bucket.
	fileID   string
	bucket   string
	key      string
	filename string
	grant    auth.Grant
	// parts locates the file bytes of a multipart/byteranges body, so
	// progress records exactly the ranges sent; nil for other bodies.
	parts []partData
	// rawKey is the request path pathKey was decoded from (the request's
	// bytes: valid only during the handler); keyCached says pathKey came
	// from the key cache. See rememberKey.
	rawKey    []byte
	pathKey   string
	keyCached bool
	// contentType is the catalog's media type for the file, validated;
	// empty to send the object's own.
	contentType string
	// err is what the answer failed with, for the access log; nil for a
	// success.
	err error
	// streamed is set when the response body is a stream that writes the
	// access log line itself when it closes.
	streamed bool
}

// routeName is the route for the access log; empty before one was found.
func (d *download) routeName() string {
	if d.route == nil {
		return ""
	}
	return d.route.Name
}

// rememberKey interns d's key once the request has passed authorisation
// and its object exists, so that only such requests fill the key cache.
func (s *Server) rememberKey(d *download) {
	if !d.keyCached && d.rawKey != nil {
		s.keys.add(d.rawKey, d.pathKey)
		d.keyCached = true
	}
}

// resolve maps the request to a route and an object: by Host first, then
// by the /download/ prefix (through the catalog when there is one).
func (s *Server) resolve(ctx *fasthttp.RequestCtx, path []byte, d *download) error {
	// ctx.Host is the request target's host for absolute-form requests
	// (RFC 9112 3.2.2: Host is then ignored), else the Host header.
	rt := s.rt.Load()
	d.rt = rt
	if r, ok := rt.hosts.Lookup(ctx.Host()); ok {
		d.route = r
		raw := bytes.TrimPrefix(path, []byte("/"))
		key, cached, err := s.keys.objectKey(raw)
		if err != nil {
			return errBadKey
		}
		d.rawKey, d.pathKey, d.keyCached = raw, key, cached
		d.fileID, d.bucket, d.key, d.filename = key, r.Bucket, key, key
		return nil
	}
	if !bytes.HasPrefix(path, pathDownload) {
		if rt.hasRoutes {
			return errUnknownHost
		}
		return errNotFound
	}
	if !rt.downloadEnabled {
		return errNotFound
	}
	d.route = &rt.download
	raw := path[len(pathDownload):]
	id, cached, err := s.keys.objectKey(raw)
	if err != nil {
		return errBadKey
	}
	d.rawKey, d.pathKey, d.keyCached = raw, id, cached
	d.fileID, d.bucket, d.key, d.filename = id, rt.download.Bucket, id, id
	return nil
}

// lookupCatalog resolves a /download/ id through the catalog, when there is
// one. It runs after authorize, so that without a valid token the answer
// never depends on whether the id exists, and the catalog is read only for
// ids a token was issued for. A client past its failure limit is refused
// before any lookup, and an unknown id counts as a failure (the catalog
// also remembers it briefly), so enumerating ids on an open route costs at
// most the limit in Redis reads per client and minute.
func (s *Server) lookupCatalog(ctx *fasthttp.RequestCtx, d *download) error {
	if s.catalog == nil || d.route != &d.rt.download {
		return nil
	}
	var client netip.Addr
	if s.failures != nil {
		client = s.clientAddr(ctx)
		if err := s.failures.Throttled(client); err != nil {
			return err
		}
	}
	meta, err := s.catalog.Lookup(context.Background(), d.fileID) // bounded by auth.catalog.timeout
	if err != nil {
		if errors.Is(err, auth.ErrFileNotFound) {
			if s.failures != nil {
				s.failures.Failed(client)
			}
			return err
		}
		return fmt.Errorf("%w: %w", errCatalogDown, err)
	}
	d.bucket, d.key = meta.Bucket, meta.Key
	d.contentType = catalogContentType(meta.ContentType)
	if meta.Filename != "" {
		d.filename = meta.Filename
	}
	return nil
}

// fail answers err and keeps it for the access log.
func (s *Server) fail(ctx *fasthttp.RequestCtx, d *download, err error) {
	e := errorFor(err)
	writeError(ctx, e)
	if ra := retryAfter(err); ra > 0 {
		var buf [20]byte
		ctx.Response.Header.SetCanonical(hdrRetryAfter, strconv.AppendInt(buf[:0], int64((ra+time.Second-1)/time.Second), 10))
	}
	if e.status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.SetCanonical(hdrWWWAuthenticate, hdrBearer)
	}
	d.err = err
}

// serve answers a GET or HEAD for one object.
func (s *Server) serve(ctx *fasthttp.RequestCtx, d *download) {
	// One retry when the object changes between Stat and Open: the second
	// Stat sees the new version, so the client gets consistent bytes.
	for attempt := 0; ; attempt++ {
		// No per-request deadline here: the cache (stat_timeout) and the
		// origin (timeout) bound their own calls, and a context with a
		// timer per request is the largest allocation of a cache hit.
		info, err := s.objects.Stat(context.Background(), d.bucket, d.key)
		if err == nil {
			s.rememberKey(d) // authorised, and the object exists
			err = s.respond(ctx, d, info)
		}
		if err == nil {
			return
		}
		if errors.Is(err, origin.ErrChanged) && attempt == 0 {
			// Forget everything decided for the old version (status,
			// Content-Range, validators) before answering for the new one.
			ctx.Response.Reset()
			continue
		}
		s.fail(ctx, d, err)
		return
	}
}

// respond decides preconditions and ranges for the version info and sets
// up the response. An error means nothing was committed to the response.
func (s *Server) respond(ctx *fasthttp.RequestCtx, d *download, info origin.Info) error {
	if d.contentType != "" {
		info.ContentType = d.contentType // the catalog knows the file best
	}
	req := &ctx.Request.Header
	h := &ctx.Response.Header
	rangeHdr := req.Peek(fasthttp.HeaderRange)
	cond := conditions{
		IfMatch:           req.Peek(fasthttp.HeaderIfMatch),
		IfNoneMatch:       req.Peek(fasthttp.HeaderIfNoneMatch),
		IfModifiedSince:   req.Peek(fasthttp.HeaderIfModifiedSince),
		IfUnmodifiedSince: req.Peek(fasthttp.HeaderIfUnmodifiedSince),
		IfRange:           req.Peek(fasthttp.HeaderIfRange),
		HasRange:          len(rangeHdr) > 0,
	}
	// The response's Date is taken as the request's arrival: earlier than
	// the response itself, so it can only make a Last-Modified weaker.
	out := evaluate(&cond, true, info.ETag, info.LastModified, ctx.Time())
	switch out.Status {
	case fasthttp.StatusPreconditionFailed:
		return errPrecondition
	case fasthttp.StatusNotModified:
		// RFC 9110 15.4.5: a 304 carries the validators a 200 would have.
		setValidators(h, info)
		h.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}

	var spanBuf [maxRangeSpecs]span
	var spans []span
	if out.UseRange {
		var err error
		spans, err = parseRange(spanBuf[:0], rangeHdr, info.Size)
		switch {
		case errors.Is(err, errRangeUnsatisfiable):
			writeError(ctx, errUnsatisfiable)
			h.SetCanonical(hdrAcceptRanges, hdrBytes)
			h.SetCanonical(hdrContentRange, appendUnsatisfiedRange(nil, info.Size))
			return nil
		case err != nil:
			// Invalid syntax or an abusive set: ignore Range (RFC 9110 14.2).
			spans = nil
		}
	}

	setValidators(h, info)
	h.SetCanonical(hdrAcceptRanges, hdrBytes)
	// The object's bytes are the client's, not ours: a browser must not
	// sniff them into a type that runs (HTML, script) on the edge's origin.
	h.SetCanonical(hdrXContentTypeOptions, hdrNosniff)
	if s.cfg.ContentDisposition == "attachment" {
		var buf [256]byte
		h.SetCanonical(hdrContentDisposition, disposition.Append(buf[:0], d.filename))
	}
	if len(spans) > 1 {
		return s.respondMultipart(ctx, d, info, spans)
	}

	if info.ContentType != "" {
		h.SetContentType(info.ContentType)
	} else {
		h.SetContentTypeBytes(hdrOctetStream)
	}
	off, n := int64(0), info.Size
	if len(spans) == 1 {
		off, n = spans[0].Start, spans[0].Length
		var buf [64]byte
		h.SetCanonical(hdrContentRange, appendContentRange(buf[:0], spans[0], info.Size))
		h.SetStatusCode(fasthttp.StatusPartialContent)
	}
	if ctx.IsHead() || n == 0 {
		h.SetContentLength(int(n))
		return nil
	}
	lease, err := s.admit(ctx, d)
	if err != nil {
		return err
	}
	rc, err := s.objects.Open(context.Background(), d.bucket, d.key, info.ETag, off, n)
	if err != nil {
		lease.Release()
		return err
	}
	if cs, ok := rc.(cacheStatuser); ok {
		h.SetCanonical(hdrXCache, cacheStatusBytes(cs.CacheStatus()))
	}
	s.stream(ctx, d, lease, rc, off, n, info.Size)
	return nil
}

// respondMultipart answers several ranges with one multipart/byteranges
// body (RFC 9110 14.6) whose parts are opened one at a time as the client
// reads, so memory stays at one part's stream.
func (s *Server) respondMultipart(ctx *fasthttp.RequestCtx, d *download, info origin.Info, spans []span) error {
	// Copy: the caller's array lives on its stack, and naming the copy
	// differently keeps escape analysis from moving that array to the heap.
	parts := append([]span(nil), spans...)
	boundary := newBoundary()
	h := &ctx.Response.Header
	h.SetContentType(hdrMultipartPrefix + boundary)
	h.SetStatusCode(fasthttp.StatusPartialContent)
	n := multipartLength(boundary, info.ContentType, parts, info.Size)
	if ctx.IsHead() {
		h.SetContentLength(int(n))
		return nil
	}
	lease, err := s.admit(ctx, d)
	if err != nil {
		return err
	}
	// Open the first part now so a failing origin yields a clean error
	// status instead of a truncated 206.
	bucket, key, etag := d.bucket, d.key, info.ETag
	first, err := s.objects.Open(context.Background(), bucket, key, etag, parts[0].Start, parts[0].Length)
	if err != nil {
		lease.Release()
		return err
	}
	open := func(off, n int64) (io.ReadCloser, error) {
		if first != nil && off == parts[0].Start {
			r := first
			first = nil
			return r, nil
		}
		return s.objects.Open(context.Background(), bucket, key, etag, off, n)
	}
	body := newMultipartBody(boundary, info.ContentType, parts, info.Size, open)
	// Progress counts distinct bytes of the file: the layout tells the
	// file bytes of each part from the part headers around them.
	if s.stats != nil {
		d.parts = multipartLayout(boundary, info.ContentType, parts, info.Size)
	}
	s.stream(ctx, d, lease, &closeBoth{ReadCloser: body, extra: &first}, -1, n, info.Size)
	return nil
}

// closeBoth closes the multipart body and, if the body never asked for it,
// the first part opened ahead of time.
type closeBoth struct {
	io.ReadCloser
	extra *io.ReadCloser
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	if *c.extra != nil {
		(*c.extra).Close()
		*c.extra = nil
	}
	return err
}

func setValidators(h *fasthttp.ResponseHeader, info origin.Info) {
	if info.ETag != "" {
		h.SetCanonical(hdrETag, s2b(info.ETag))
	}
	if !info.LastModified.IsZero() {
		h.SetLastModified(info.LastModified)
	}
}

// The X-Cache values are the cache's status strings, kept as bytes so
// that setting the header does not allocate.
var (
	xcacheHit     = []byte(cache.StatusHit)
	xcacheMiss    = []byte(cache.StatusMiss)
	xcachePartial = []byte(cache.StatusPartial)
	xcacheStale   = []byte(cache.StatusStale)
)

func cacheStatusBytes(s string) []byte {
	switch s {
	case cache.StatusHit:
		return xcacheHit
	case cache.StatusMiss:
		return xcacheMiss
	case cache.StatusPartial:
		return xcachePartial
	case cache.StatusStale:
		return xcacheStale
	}
	return []byte(s)
}

// redirect answers with a presigned origin URL (route mode "redirect").
func (s *Server) redirect(ctx *fasthttp.RequestCtx, d *download) {
	p, ok := s.origin.(origin.Presigner)
	if !ok {
		s.fail(ctx, d, errRedirectDisabled)
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// Stat first so a missing object is our 404, not the store's XML.
	if _, err := s.objects.Stat(sctx, d.bucket, d.key); err != nil {
		s.fail(ctx, d, err)
		return
	}
	s.rememberKey(d)
	u, err := p.PresignGet(sctx, d.bucket, d.key, d.route.RedirectTTL, path.Base(d.filename))
	if err != nil {
		s.fail(ctx, d, err)
		return
	}
	ctx.Response.Header.SetCanonical(hdrCacheControl, hdrNoStore)
	ctx.Redirect(u, fasthttp.StatusFound)
}
