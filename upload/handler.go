package upload

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/limiter"
)

// opTimeout bounds the Redis and S3 calls of one request outside the body
// transfer.
const opTimeout = 30 * time.Second

// ServeUpload answers one tus request under Prefix. client is the request's
// client as the front door resolved it (for the limiter).
func (u *Uploads) ServeUpload(ctx *fasthttp.RequestCtx, client netip.Addr) {
	method := string(ctx.Method())
	if method == fasthttp.MethodPost {
		// tus's X-HTTP-Method-Override lets clients behind proxies that
		// only pass GET and POST send PATCH and DELETE.
		if o := string(ctx.Request.Header.Peek("X-HTTP-Method-Override")); o == fasthttp.MethodPatch || o == fasthttp.MethodDelete {
			method = o
		}
	}
	ctx.Response.Header.Set("Tus-Resumable", tusVersion)
	u.cors(ctx)
	if method == fasthttp.MethodOptions {
		u.options(ctx)
		return
	}
	if string(ctx.Request.Header.Peek("Tus-Resumable")) != tusVersion {
		writeError(ctx, errVersion)
		return
	}
	// The target as sent, as the front door matched it: never a decoded
	// or dot-segment-resolved path.
	path, _, _ := strings.Cut(string(ctx.Request.Header.RequestURI()), "?")
	rest, under := strings.CutPrefix(path, u.cfg.Prefix)
	if !under && path+"/" != u.cfg.Prefix {
		u.refuse(ctx, errNotFound)
		return
	}
	if rest == "" {
		if method != fasthttp.MethodPost {
			u.refuse(ctx, errMethod)
			ctx.Response.Header.Set("Allow", "OPTIONS, POST")
			return
		}
		u.create(ctx, path, client)
		return
	}
	if !validID(rest) {
		u.refuse(ctx, errNotFound)
		return
	}
	switch method {
	case fasthttp.MethodHead:
		u.head(ctx, rest)
	case fasthttp.MethodPatch:
		u.patch(ctx, rest, client)
	case fasthttp.MethodDelete:
		u.terminate(ctx, rest)
	default:
		u.refuse(ctx, errMethod)
		ctx.Response.Header.Set("Allow", "OPTIONS, HEAD, PATCH, DELETE")
	}
}

// refuse answers e and, when the request may still be sending a body we
// will not read, closes the connection instead of draining it.
func (u *Uploads) refuse(ctx *fasthttp.RequestCtx, e *apiError) {
	writeError(ctx, e)
	u.cors(ctx)
	if cl := ctx.Request.Header.ContentLength(); cl != 0 && cl != -2 {
		ctx.SetConnectionClose()
	}
}

func (u *Uploads) options(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Tus-Version", tusVersion)
	h.Set("Tus-Extension", tusExtensions)
	h.Set("Tus-Max-Size", strconv.FormatInt(u.cfg.MaxSize, 10))
	h.Set("Tus-Checksum-Algorithm", tusChecksums)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// cors answers browsers (Uppy, tus-js-client): uploads authenticate with a
// bearer token, never cookies, so any origin may call, and the tus headers
// are exposed to scripts.
func (u *Uploads) cors(ctx *fasthttp.RequestCtx) {
	if len(ctx.Request.Header.Peek("Origin")) == 0 {
		return
	}
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Upload-Concat, Tus-Version, Tus-Resumable, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm")
	if ctx.IsOptions() {
		h.Set("Access-Control-Allow-Methods", "POST, HEAD, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, Upload-Checksum, Upload-Concat, Upload-Defer-Length, X-HTTP-Method-Override, X-Requested-With")
		h.Set("Access-Control-Max-Age", "86400")
	}
}

// authorize checks the request's credential against the one that created
// st: a bearer token, or ?token= (a token, or the signature of the signed
// URL that created the upload, which its Location carries). Either may
// match, so that a client adding an unrelated Authorization header to an
// upload URL that carries its credential still resumes.
func (u *Uploads) authorize(ctx *fasthttp.RequestCtx, st *state) *apiError {
	h := bearer(string(ctx.Request.Header.Peek("Authorization")), "")
	q := string(ctx.QueryArgs().Peek("token"))
	if h != "" && tokenHash(h) == st.TokenHash || q != "" && tokenHash(q) == st.TokenHash {
		return nil
	}
	return errToken
}

// loadLive reads id's state and refuses uploads that are gone or expired.
func (u *Uploads) loadLive(c context.Context, id string) (*state, *apiError) {
	st, err := u.load(c, id)
	switch {
	case errors.Is(err, errNoUpload):
		return nil, errNotFound
	case err != nil:
		u.log.Error("upload state", "upload", logID(id), "err", err)
		return nil, errState
	case !st.Done && u.now().After(st.Expires):
		return nil, errNotFound
	}
	return st, nil
}

// head answers "which bytes do you have" from Redis: any node can.
func (u *Uploads) head(ctx *fasthttp.RequestCtx, id string) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	st, e := u.loadLive(c, id)
	if e == nil {
		e = u.authorize(ctx, st)
	}
	if e == nil && st.Done && !st.Registered && !st.Partial {
		// Complete but not yet downloadable (the catalog failed after the
		// object was): finish first, so that no client is told the upload
		// is done before it is.
		e = u.registerAgain(c, id)
	}
	if e != nil {
		u.refuse(ctx, e)
		ctx.Response.SkipBody = true
		return
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	h.Set("Upload-Length", strconv.FormatInt(st.Length, 10))
	if st.Metadata != "" {
		h.Set("Upload-Metadata", st.Metadata)
	}
	u.setConcat(ctx, st)
	if !st.Done {
		h.Set("Upload-Expires", st.Expires.UTC().Format(time.RFC1123))
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SkipBody = true
}

// registerAgain retries the registration of a complete upload under its
// lock.
func (u *Uploads) registerAgain(c context.Context, id string) *apiError {
	l, err := u.acquire(c, id)
	if errors.Is(err, errHeld) {
		return errLocked
	}
	if err != nil {
		return errState
	}
	defer l.release()
	st, e := u.loadLive(c, id)
	if e != nil || st.Registered {
		return e
	}
	return u.registerLocked(c, st)
}

func (u *Uploads) setConcat(ctx *fasthttp.RequestCtx, st *state) {
	switch {
	case st.Partial:
		ctx.Response.Header.Set("Upload-Concat", "partial")
	case len(st.Final) > 0:
		urls := make([]string, len(st.Final))
		for i, p := range st.Final {
			urls[i] = u.cfg.Prefix + p
		}
		ctx.Response.Header.Set("Upload-Concat", "final;"+strings.Join(urls, " "))
	}
}

// create answers POST: a new upload (creation), maybe with its first bytes
// (creation-with-upload), or a final upload of partial ones
// (concatenation). Every check comes before the multipart upload is
// created, so a refused request leaves nothing behind in the store.
func (u *Uploads) create(ctx *fasthttp.RequestCtx, path string, client netip.Addr) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var (
		tok, signed string // the credential; signed: the same, when it is a URL signature
		g           Grant
		err         error
	)
	if isSigned(ctx) {
		var e *apiError
		if tok, g, e = u.signedGrant(ctx, path, client); e != nil {
			u.refuse(ctx, e)
			return
		}
		signed = tok
	} else {
		tok = bearer(string(ctx.Request.Header.Peek("Authorization")), string(ctx.QueryArgs().Peek("token")))
		if g, err = u.grant(c, tok); err != nil {
			if !errors.Is(err, errNoToken) {
				u.log.Error("upload token", "err", err)
				u.refuse(ctx, errState)
				return
			}
			u.refuse(ctx, errToken)
			return
		}
	}
	meta, err := parseMetadata(string(ctx.Request.Header.Peek("Upload-Metadata")))
	if err != nil {
		u.refuse(ctx, errMetadataBad)
		return
	}
	sum := strings.ToLower(meta["sha256"])
	if sum != "" && !isHex64(sum) {
		u.refuse(ctx, errMetadataBad)
		return
	}
	id := newID()
	key, ok := g.objectKey(id, meta)
	if !ok {
		u.refuse(ctx, errMetadataBad)
		return
	}
	maxSize := u.cfg.MaxSize
	if g.MaxSize > 0 {
		maxSize = g.MaxSize
	}
	st := &state{ID: id, Bucket: g.Bucket, Key: key, FileID: g.FileID, Metadata: string(ctx.Request.Header.Peek("Upload-Metadata")),
		SHA256: sum, Filename: meta["filename"], ContentType: meta["filetype"], TokenHash: tokenHash(tok),
		Expires: u.now().Add(u.cfg.Expiry)}
	if st.FileID == "" {
		st.FileID = id
	}
	if cc := string(ctx.Request.Header.Peek("Upload-Concat")); cc != "" {
		cat, err := parseConcat(cc)
		if err != nil {
			u.refuse(ctx, errConcatBad)
			return
		}
		if !cat.partial {
			u.createFinal(ctx, c, st, cat.final, maxSize, signed)
			return
		}
		st.Partial = true
		st.Key = u.stagingKey(id) // a partial's bytes are staged, never the file
		st.SHA256 = ""            // a sha256 in its metadata is the whole file's
	}
	length, ok := parseLength(string(ctx.Request.Header.Peek("Upload-Length")))
	if !ok {
		u.refuse(ctx, errLength)
		return
	}
	if length > maxSize {
		u.refuse(ctx, errTooLarge)
		return
	}
	st.Length = length
	cl := int64(ctx.Request.Header.ContentLength())
	hasBody := cl != 0 && cl != -2
	if hasBody && string(ctx.Request.Header.ContentType()) != offsetOctetStream {
		u.refuse(ctx, errContentType)
		return
	}
	if cl > length { // before the multipart upload exists, like every refusal
		u.refuse(ctx, errBeyondLength)
		return
	}
	var lease *limiter.Lease
	if hasBody {
		var e *apiError
		if lease, e = u.admit(ctx, client); e != nil {
			u.refuse(ctx, e)
			return
		}
		defer u.done(lease)
	}
	h := sha256.New()
	st.Hash, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
	if st.S3Upload, err = u.s3().NewMultipartUpload(c, st.Bucket, st.Key, minio.PutObjectOptions{ContentType: st.ContentType}); err != nil {
		u.log.Error("upload: new multipart upload", "bucket", st.Bucket, "err", err)
		u.refuse(ctx, errStore)
		return
	}
	l, err := u.acquire(c, id) // nobody else knows id yet: this cannot be refused
	if err != nil {
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
		u.refuse(ctx, errState)
		return
	}
	defer l.release()
	if err := u.saveLocked(c, st); err != nil {
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
		u.log.Error("upload: create", "err", err)
		u.refuse(ctx, errState)
		return
	}
	// The janitor spares the multipart uploads this hash names while their
	// upload lives: without the entry it would abort a live upload once it
	// is older than Expiry.
	if err := u.rdb.HSet(c, u.liveKey(), st.S3Upload, id).Err(); err != nil {
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
		u.rdb.Del(c, u.stateKey(id))
		u.log.Error("upload: create", "err", err)
		u.refuse(ctx, errState)
		return
	}
	ctx.Response.Header.Set("Location", u.location(id, signed))
	ctx.Response.Header.Set("Upload-Expires", st.Expires.UTC().Format(time.RFC1123))
	if hasBody || length == 0 {
		if e := u.writeLocked(ctx, st, l, lease); e != nil {
			u.refuse(ctx, e) // the upload exists; the client resumes with HEAD
			ctx.Response.Header.Set("Location", u.location(id, signed))
			return
		}
		ctx.Response.Header.Set("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	}
	ctx.SetStatusCode(fasthttp.StatusCreated)
}

// patch appends the body at Upload-Offset.
func (u *Uploads) patch(ctx *fasthttp.RequestCtx, id string, client netip.Addr) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if string(ctx.Request.Header.ContentType()) != offsetOctetStream {
		u.refuse(ctx, errContentType)
		return
	}
	off, ok := parseLength(string(ctx.Request.Header.Peek("Upload-Offset")))
	if !ok {
		u.refuse(ctx, errOffsetHeader)
		return
	}
	st, e := u.loadLive(c, id)
	if e == nil {
		e = u.authorize(ctx, st)
	}
	if e == nil && len(st.Final) > 0 {
		e = errFinalPatch
	}
	if e != nil {
		u.refuse(ctx, e)
		return
	}
	lease, e := u.admit(ctx, client)
	if e != nil {
		u.refuse(ctx, e)
		return
	}
	defer u.done(lease)
	l, err := u.acquire(c, id)
	if err != nil {
		if errors.Is(err, errHeld) {
			u.refuse(ctx, errLocked)
		} else {
			u.refuse(ctx, errState)
		}
		return
	}
	defer l.release()
	if st, e = u.loadLive(c, id); e != nil { // re-read under the lock
		u.refuse(ctx, e)
		return
	}
	if off != st.Offset {
		u.refuse(ctx, errOffset)
		return
	}
	if st.Done {
		// Nothing more to write; a client retrying its last PATCH after
		// losing the answer gets the offset.
		if ctx.Request.Header.ContentLength() > 0 {
			u.refuse(ctx, errBeyondLength)
			return
		}
		if !st.Registered && !st.Partial {
			if e := u.registerLocked(c, st); e != nil {
				u.refuse(ctx, e)
				return
			}
		}
	} else if e := u.writeLocked(ctx, st, l, lease); e != nil {
		u.refuse(ctx, e)
		return
	}
	ctx.Response.Header.Set("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	if !st.Done {
		ctx.Response.Header.Set("Upload-Expires", st.Expires.UTC().Format(time.RFC1123))
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// terminate answers DELETE (termination): the multipart upload is aborted,
// the staging object and the state deleted.
func (u *Uploads) terminate(ctx *fasthttp.RequestCtx, id string) {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	st, e := u.loadLive(c, id)
	if e == nil {
		e = u.authorize(ctx, st)
	}
	if e != nil {
		u.refuse(ctx, e)
		return
	}
	l, err := u.acquire(c, id)
	if err != nil {
		if errors.Is(err, errHeld) {
			u.refuse(ctx, errLocked)
		} else {
			u.refuse(ctx, errState)
		}
		return
	}
	defer l.release()
	if err := u.discard(c, st); err != nil {
		u.log.Error("upload: terminate", "upload", logID(id), "err", err)
		u.refuse(ctx, errStore)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// discard removes every trace of an upload: its multipart upload (unless
// complete), its staging object and its state.
func (u *Uploads) discard(c context.Context, st *state) error {
	u.tails.drop(st.ID)
	if !st.Done || st.Partial {
		if !st.Done {
			if err := u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload); err != nil && !isNoSuchUpload(err) {
				return err
			}
		}
		if err := u.s3().RemoveObject(c, st.Bucket, u.stagingKey(st.ID), minio.RemoveObjectOptions{}); err != nil {
			return err
		}
	}
	u.rdb.HDel(c, u.liveKey(), st.S3Upload)
	return u.rdb.Del(c, u.stateKey(st.ID)).Err()
}

func isNoSuchUpload(err error) bool {
	return minio.ToErrorResponse(err).Code == "NoSuchUpload"
}

// admit takes a node slot and the limiter's lease for a byte-carrying
// request.
func (u *Uploads) admit(ctx *fasthttp.RequestCtx, client netip.Addr) (*limiter.Lease, *apiError) {
	select {
	case u.active <- struct{}{}:
	default:
		retryAfter(ctx, 1)
		return nil, errBusy
	}
	if u.limiter == nil {
		return nil, nil
	}
	lease, err := u.limiter.Admit(u.clientID(client))
	if err != nil {
		<-u.active
		var rj *limiter.Rejection
		if errors.As(err, &rj) {
			retryAfter(ctx, int(rj.RetryAfter.Seconds()+0.5))
			return nil, errTooMany
		}
		return nil, errBusy
	}
	return lease, nil
}

// done releases what admit took. admit's callers defer it only after
// success.
func (u *Uploads) done(lease *limiter.Lease) {
	lease.Release()
	<-u.active
}

var errTooMany = newError(429, "too_many_uploads", "too many uploads from this client; retry later")

func (u *Uploads) liveKey() string { return u.cfg.KeyPrefix + "live" }

// logID shortens an upload id for logs: the whole id is a capability.
func logID(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
