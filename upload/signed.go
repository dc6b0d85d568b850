package upload

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// URLSigner checks signed upload URLs (auth.Signer implements it; its doc
// gives the canonical string). A signed URL authorises the creation POST
// only: the upload it creates is then authorised by its own state, like
// one created with a token.
type URLSigner interface {
	VerifyUpload(host, path string, sc auth.UploadScope, expires, kid, sig []byte, clientIP string, now time.Time) error
}

var _ URLSigner = (*auth.Signer)(nil)

var (
	errSignature        = newError(http.StatusForbidden, auth.CodeSignatureInvalid, "the upload URL's signature is invalid")
	errSignatureExpired = newError(http.StatusForbidden, auth.CodeSignatureExpired, "the upload URL has expired")
)

// isSigned reports whether a creation request carries a signed URL rather
// than a token.
func isSigned(ctx *fasthttp.RequestCtx) bool { return ctx.QueryArgs().Has("sig") }

// signedGrant checks the signed creation URL of ctx (path: its target's
// path as sent) and returns the credential the upload is bound to and what
// the URL grants. The credential is the signature: every upload created
// with one signed URL shares it, so the partial uploads of a concatenation
// and their final upload belong together, as with one token. The client
// presents it again as ?token= on the upload URL the answer's Location
// gives (tus clients follow Location as is).
func (u *Uploads) signedGrant(ctx *fasthttp.RequestCtx, path string, client netip.Addr) (string, Grant, *apiError) {
	sp := u.signer.Load()
	if sp == nil {
		return "", Grant{}, errSignature
	}
	q := ctx.QueryArgs()
	sc := auth.UploadScope{Bucket: string(q.Peek(auth.UploadParamBucket)), Key: string(q.Peek(auth.UploadParamKey)),
		Prefix: string(q.Peek(auth.UploadParamPrefix)), FileID: string(q.Peek(auth.UploadParamFileID))}
	if v := q.Peek(auth.UploadParamMaxSize); len(v) > 0 {
		n, ok := parseLength(string(v))
		if !ok {
			return "", Grant{}, errSignature
		}
		sc.MaxSize = n
	}
	ip := ""
	if client.IsValid() {
		ip = client.String()
	}
	sig := q.Peek("sig")
	err := (*sp).VerifyUpload(string(ctx.Host()), path, sc, q.Peek("expires"), q.Peek("kid"), sig, ip, u.now())
	if err != nil {
		if errors.Is(err, auth.ErrSignatureExpired) {
			return "", Grant{}, errSignatureExpired
		}
		return "", Grant{}, errSignature
	}
	// Genuine, but the signer may have asked for more than this node
	// allows: refused like a token with that grant.
	if !slices.Contains(u.cfg.Buckets, sc.Bucket) || (sc.Key == "") == (sc.Prefix == "") || sc.MaxSize > u.cfg.MaxSize ||
		sc.Key != "" && !objectkey.Valid(sc.Key) || sc.Prefix != "" && !objectkey.Valid(sc.Prefix+"x") {
		return "", Grant{}, errTokenScope
	}
	return string(sig), Grant{Bucket: sc.Bucket, Key: sc.Key, Prefix: sc.Prefix, FileID: sc.FileID, MaxSize: sc.MaxSize}, nil
}

// location is the upload URL a creation answers with: for an upload made
// with a signed URL it carries the credential, since the client has no
// token to send.
func (u *Uploads) location(id, signedCred string) string {
	if signedCred != "" {
		return u.cfg.Prefix + id + "?token=" + signedCred
	}
	return u.cfg.Prefix + id
}
