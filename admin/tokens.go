package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// TokenStore is what the admin API needs to issue and revoke tokens
// (auth.Verifier implements it).
type TokenStore interface {
	Create(ctx context.Context, spec auth.TokenSpec) (string, time.Time, error)
	Revoke(ctx context.Context, token string) error
}

// Catalog is what the admin API needs of the file catalog (auth.Catalog
// implements it).
type Catalog interface {
	Lookup(ctx context.Context, id string) (auth.FileMeta, error)
	Put(ctx context.Context, m auth.FileMeta) error
}

// tokenRequest is the body of POST /v1/tokens. Without Bucket, FileID is a
// /download/ id (a catalog id or a key of the download bucket); with
// Bucket, it is an object key in that bucket and the token opens it on the
// host routes serving the bucket (auth.ObjectFileID).
type tokenRequest struct {
	FileID    string   `json:"file_id"`
	Bucket    string   `json:"bucket"`
	UserID    string   `json:"user_id"`
	AllowedIP []string `json:"allowed_ip"`
	MaxUses   int      `json:"max_uses"`
	Rate      int64    `json:"rate"`
	TTL       string   `json:"ttl"`
}

// fileRequest is the body of PUT /v1/files/{id} and the answer of GET.
type fileRequest struct {
	ID          string `json:"id,omitempty"`
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Filename    string `json:"filename,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	CreatedAt   int64  `json:"created_at,omitempty"`
	UpdatedAt   int64  `json:"updated_at,omitempty"`
}

// registerTokens adds the token routes:
//
//	POST   /v1/tokens         {file_id,bucket,user_id,allowed_ip[],max_uses,rate,ttl} -> 201 {token,expires_at,file_id,url}
//	DELETE /v1/tokens/{token} -> 204; 404 token_not_found
//
// downloadBase is the public base URL of downloads (for the url field,
// given only for /download/ ids: a token for a host route, created with
// bucket, is used on the hosts serving that bucket).
func (a *API) registerTokens(tokens TokenStore, downloadBase string) {
	a.mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req tokenRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		spec := auth.TokenSpec{FileID: req.FileID, UserID: req.UserID, AllowedIP: req.AllowedIP, MaxUses: req.MaxUses, Rate: req.Rate}
		if req.Bucket != "" {
			if strings.Contains(req.Bucket, "/") || !objectkey.Valid(req.Bucket) || !objectkey.Valid(req.FileID) {
				writeError(w, http.StatusBadRequest, "bad_request", "bucket must be a bucket name and file_id an object key in it")
				return
			}
			spec.FileID = auth.ObjectFileID(req.Bucket, req.FileID)
		}
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				writeError(w, http.StatusBadRequest, "bad_request", "ttl must be a positive duration such as 1h30m")
				return
			}
			spec.TTL = d
		}
		tok, exp, err := tokens.Create(r.Context(), spec)
		if err != nil {
			authError(w, err)
			return
		}
		a.log.Info("admin token created", "token", auth.Redact(tok), "file_id", spec.FileID, "user_id", req.UserID, "max_uses", req.MaxUses)
		answer := map[string]string{
			"token":      tok,
			"expires_at": exp.UTC().Format(time.RFC3339),
			"file_id":    spec.FileID,
		}
		// Only a /download/ id has a URL this API knows; a host-route
		// token is used on whichever host serves its bucket.
		if !auth.IsObjectFileID(spec.FileID) {
			answer["url"] = downloadBase + "/download/" + url.PathEscape(spec.FileID) + "?token=" + url.QueryEscape(tok)
		}
		writeJSON(w, http.StatusCreated, answer)
	})
	a.mux.HandleFunc("DELETE /v1/tokens/{token}", func(w http.ResponseWriter, r *http.Request) {
		tok := r.PathValue("token")
		err := tokens.Revoke(r.Context(), tok)
		switch {
		case errors.Is(err, auth.ErrTokenNotFound):
			writeError(w, http.StatusNotFound, "token_not_found", "no such token")
		case err != nil:
			authError(w, err)
		default:
			a.log.Info("admin token revoked", "token", auth.Redact(tok))
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

// registerCatalog adds the catalog routes:
//
//	PUT    /v1/files/{id}     {bucket,key,filename,sha256,size,content_type} -> 204
//	GET    /v1/files/{id}     -> 200 {...}; 404 not_found
func (a *API) registerCatalog(catalog Catalog) {
	a.mux.HandleFunc("PUT /v1/files/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req fileRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		id := r.PathValue("id")
		if req.Bucket == "" || req.Key == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "bucket and key are required")
			return
		}
		if !objectkey.Valid(req.Key) {
			writeError(w, http.StatusBadRequest, "bad_request", "key is not a valid object key")
			return
		}
		m := auth.FileMeta{ID: id, Bucket: req.Bucket, Key: req.Key, Filename: req.Filename, SHA256: req.SHA256,
			Size: req.Size, ContentType: req.ContentType}
		if err := catalog.Put(r.Context(), m); err != nil {
			authError(w, err)
			return
		}
		a.log.Info("admin file registered", "file_id", id, "bucket", req.Bucket, "key", req.Key)
		w.WriteHeader(http.StatusNoContent)
	})
	a.mux.HandleFunc("GET /v1/files/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, err := catalog.Lookup(r.Context(), r.PathValue("id"))
		if errors.Is(err, auth.ErrFileNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no such file")
			return
		}
		if err != nil {
			authError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, fileRequest{ID: m.ID, Bucket: m.Bucket, Key: m.Key, Filename: m.Filename,
			SHA256: m.SHA256, Size: m.Size, ContentType: m.ContentType, CreatedAt: m.CreatedAt.Unix(), UpdatedAt: m.UpdatedAt.Unix()})
	})
}

// authError answers an auth package error: a validation failure is
// the caller's (400), anything else is Redis trouble (503).
func authError(w http.ResponseWriter, err error) {
	var ae *auth.Error
	if errors.As(err, &ae) {
		writeError(w, ae.Status, ae.Code, "refused")
		return
	}
	if errors.Is(err, auth.ErrInvalidSpec) {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the token store could not be reached")
}
