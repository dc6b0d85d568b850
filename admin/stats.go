package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/stats"
)

// StatsReader is what the statistics routes read (stats.Recorder
// implements it).
type StatsReader interface {
	Hot(ctx context.Context, n int) ([]stats.HotFile, error)
	Count(ctx context.Context, fileID string) (int64, error)
	ReadAndReset(ctx context.Context, fileID string) (int64, error)
	// Task returns a task's progress hash, stats.ErrNoTask when absent.
	Task(ctx context.Context, id string) (map[string]string, error)
}

// SyncedCounts reads the access counts already moved into the database
// (catalogdb.Store implements it).
type SyncedCounts interface {
	SyncedTotal(ctx context.Context, fileID string) (int64, error)
}

// taskTimeout bounds one task read.
const taskTimeout = 2 * time.Second

// registerStats adds the statistics reads:
//
//	GET  /v1/stats/hot?n=10             -> [{file_id, accesses}]
//	GET  /v1/stats/files/{id}           -> {file_id, accesses[, synced]}
//	POST /v1/stats/files/{id}/reset     -> {file_id, accesses} (read and zeroed atomically)
//	GET  /v1/tasks/{id}                 -> the task's progress hash plus task_id
//
// accesses is the live counter in Redis; synced, present when synced is
// not nil, the total the sync committed to PostgreSQL.
func (a *API) registerStats(s StatsReader, synced SyncedCounts) {
	unavailable := func(w http.ResponseWriter) {
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics store unavailable")
	}
	a.mux.HandleFunc("GET /v1/stats/hot", func(w http.ResponseWriter, req *http.Request) {
		n := 10
		if v := req.URL.Query().Get("n"); v != "" {
			k, err := strconv.Atoi(v)
			if err != nil || k < 1 || k > 1000 {
				writeError(w, http.StatusBadRequest, "bad_request", "n must be 1..1000")
				return
			}
			n = k
		}
		hot, err := s.Hot(req.Context(), n)
		if err != nil {
			unavailable(w)
			return
		}
		out := make([]map[string]any, 0, len(hot))
		for _, h := range hot {
			out = append(out, map[string]any{"file_id": h.FileID, "accesses": h.Accesses})
		}
		writeJSON(w, http.StatusOK, out)
	})
	a.mux.HandleFunc("GET /v1/stats/files/{id}", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		n, err := s.Count(req.Context(), id)
		if err != nil {
			unavailable(w)
			return
		}
		out := map[string]any{"file_id": id, "accesses": n}
		if synced != nil {
			total, err := synced.SyncedTotal(req.Context(), id)
			if err != nil {
				writeError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics database unavailable")
				return
			}
			out["synced"] = total
		}
		writeJSON(w, http.StatusOK, out)
	})
	a.mux.HandleFunc("POST /v1/stats/files/{id}/reset", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		n, err := s.ReadAndReset(req.Context(), id)
		if err != nil {
			unavailable(w)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"file_id": id, "accesses": n})
	})
	a.mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), taskTimeout)
		defer cancel()
		id := req.PathValue("id")
		h, err := s.Task(ctx, id)
		switch {
		case errors.Is(err, stats.ErrNoTask):
			writeError(w, http.StatusNotFound, "not_found", "no such task")
		case err != nil:
			unavailable(w)
		default:
			h["task_id"] = id
			writeJSON(w, http.StatusOK, h)
		}
	})
}
