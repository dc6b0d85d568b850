package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// CatalogStore is what the admin API needs of a catalog kept in a database
// (PostgreSQL through catalogdb, wired by cmd/edgeproxy): generated ids,
// content addressing, listing and removal. Writes must reach the system of
// record before the call returns and invalidate the cached copies.
type CatalogStore interface {
	// Create adds m (m.ID empty: a generated id) and returns the stored
	// record; when m.SHA256 is already stored it returns that record with
	// created false and changes nothing.
	Create(ctx context.Context, m auth.FileMeta) (_ auth.FileMeta, created bool, _ error)
	ByHash(ctx context.Context, hash string) (auth.FileMeta, error)
	List(ctx context.Context, after int64, limit int) ([]auth.FileMeta, error)
	Delete(ctx context.Context, id string) error
}

// registerCatalogStore adds the routes of a database-backed catalog:
//
//	POST   /v1/files                {bucket,key,filename,sha256,size,content_type} -> 201 {record}; 200 {record} when sha256 is known
//	GET    /v1/files?after=ID&limit=N -> 200 [{record}...] in id order
//	GET    /v1/files?sha256=HEX     -> 200 [{record}] or []
//	DELETE /v1/files/{id}           -> 204; 404 not_found
func (a *API) registerCatalogStore(s CatalogStore) {
	a.mux.HandleFunc("POST /v1/files", func(w http.ResponseWriter, r *http.Request) {
		var req fileRequest
		if !decodeJSON(w, r, &req) {
			return
		}
		if req.Bucket == "" || req.Key == "" || !objectkey.Valid(req.Key) {
			writeError(w, http.StatusBadRequest, "bad_request", "bucket and a valid object key are required")
			return
		}
		m, created, err := s.Create(r.Context(), auth.FileMeta{Bucket: req.Bucket, Key: req.Key, Filename: req.Filename,
			SHA256: req.SHA256, Size: req.Size, ContentType: req.ContentType})
		if err != nil {
			authError(w, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			a.log.Info("admin file registered", "file_id", m.ID, "bucket", m.Bucket, "key", m.Key)
		}
		writeJSON(w, status, fileAnswer(m))
	})
	a.mux.HandleFunc("GET /v1/files", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if h := q.Get("sha256"); h != "" {
			m, err := s.ByHash(r.Context(), h)
			switch {
			case errors.Is(err, auth.ErrFileNotFound):
				writeJSON(w, http.StatusOK, []fileRequest{})
			case err != nil:
				authError(w, err)
			default:
				writeJSON(w, http.StatusOK, []fileRequest{fileAnswer(m)})
			}
			return
		}
		after, err1 := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, err2 := strconv.Atoi(q.Get("limit"))
		if (q.Has("after") && (err1 != nil || after < 0)) || (q.Has("limit") && (err2 != nil || limit < 1 || limit > 1000)) {
			writeError(w, http.StatusBadRequest, "bad_request", "after must be an id and limit 1..1000")
			return
		}
		if !q.Has("limit") {
			limit = 100
		}
		list, err := s.List(r.Context(), after, limit)
		if err != nil {
			authError(w, err)
			return
		}
		out := make([]fileRequest, 0, len(list))
		for _, m := range list {
			out = append(out, fileAnswer(m))
		}
		writeJSON(w, http.StatusOK, out)
	})
	a.mux.HandleFunc("DELETE /v1/files/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := s.Delete(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, auth.ErrFileNotFound):
			writeError(w, http.StatusNotFound, "not_found", "no such file")
		case err != nil:
			authError(w, err)
		default:
			a.log.Info("admin file removed", "file_id", r.PathValue("id"))
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func fileAnswer(m auth.FileMeta) fileRequest {
	return fileRequest{ID: m.ID, Bucket: m.Bucket, Key: m.Key, Filename: m.Filename, SHA256: m.SHA256, Size: m.Size,
		ContentType: m.ContentType, CreatedAt: m.CreatedAt.Unix(), UpdatedAt: m.UpdatedAt.Unix()}
}
