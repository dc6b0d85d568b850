package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/upload"
)

// UploadTokens is what the admin API needs to grant uploads
// (upload.Uploads implements it). CreateToken's refusals of a grant wrap
// upload.ErrInvalidGrant; its other errors are the store's.
type UploadTokens interface {
	CreateToken(ctx context.Context, g upload.Grant) (string, error)
	// Prefix is the tus creation path, for the endpoint field.
	Prefix() string
}

var _ UploadTokens = (*upload.Uploads)(nil)

// defaultUploadTTL is an upload token's lifetime when the request gives
// none. It bounds only the creation: a started upload resumes with its
// token until the upload expires (upload.expiry).
const defaultUploadTTL = time.Hour

// uploadTokenRequest is the body of POST /v1/upload-tokens: exactly one of
// Key and Prefix.
type uploadTokenRequest struct {
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
	Prefix  string `json:"prefix"`
	FileID  string `json:"file_id"`
	MaxSize int64  `json:"max_size"`
	TTL     string `json:"ttl"`
}

// registerUploadTokens adds
//
//	POST /v1/upload-tokens {bucket,key|prefix,file_id,max_size,ttl} -> 201 {token,expires_at,endpoint}
//
// endpoint is the tus creation URL under downloadBase; the client sends
// the token as Authorization: Bearer (or ?token=) on every request of the
// upload.
func (a *API) registerUploadTokens(ut UploadTokens, downloadBase string) {
	a.mux.HandleFunc("POST /v1/upload-tokens", func(w http.ResponseWriter, r *http.Request) {
		var req uploadTokenRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		g := upload.Grant{Bucket: req.Bucket, Key: req.Key, Prefix: req.Prefix, FileID: req.FileID, MaxSize: req.MaxSize, TTL: defaultUploadTTL}
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d < time.Second {
				writeError(w, http.StatusBadRequest, "bad_request", "ttl must be a duration of at least 1s such as 1h30m")
				return
			}
			g.TTL = d
		}
		tok, err := ut.CreateToken(r.Context(), g)
		switch {
		case errors.Is(err, upload.ErrInvalidGrant):
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		case err != nil:
			a.log.Error("admin upload token", "err", err)
			writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the token store could not be reached")
			return
		}
		a.log.Info("admin upload token created", "token", auth.Redact(tok), "bucket", g.Bucket, "key", g.Key, "prefix", g.Prefix,
			"file_id", g.FileID, "max_size", g.MaxSize)
		writeJSON(w, http.StatusCreated, map[string]string{
			"token":      tok,
			"expires_at": time.Now().Add(g.TTL).UTC().Format(time.RFC3339),
			"endpoint":   downloadBase + ut.Prefix(),
		})
	})
}
