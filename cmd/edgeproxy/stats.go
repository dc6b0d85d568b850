package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// StatsConfig is the stats section: access counts, download progress and
// the download log in Redis.
type StatsConfig struct {
	// Enabled records statistics (needs redis.addrs). Default true when
	// Redis is configured.
	Enabled      *bool `yaml:"enabled"`
	stats.Config `yaml:",inline"`
}

// statsAdapter gives the proxy's StatsRecorder view of a stats.Recorder;
// the proxy declares its own types so that it does not import stats.
type statsAdapter struct{ r *stats.Recorder }

func (a statsAdapter) Access(fileID string) { a.r.Access(fileID) }

func (a statsAdapter) StartTransfer(i proxy.TransferInfo) proxy.TransferTracker {
	t := a.r.StartTransfer(stats.TransferInfo(i))
	if t == nil {
		return nil // a nil *Transfer in the interface would not compare nil
	}
	return t
}

// registerStatsAdmin adds the statistics reads to the admin API:
//
//	GET  /v1/stats/hot?n=10             -> [{file_id, accesses}]
//	GET  /v1/stats/files/{id}           -> {file_id, accesses[, synced]}
//	POST /v1/stats/files/{id}/reset     -> {file_id, accesses} (read and zeroed atomically)
//	GET  /v1/tasks/{id}                 -> the download:task:<id> hash
//
// accesses is the live count in Redis; synced, given when synced is not
// nil (PostgreSQL configured), the total the sync committed to it.
func registerStatsAdmin(a *proxy.Admin, r *stats.Recorder, rdb redis.UniversalClient, synced func(context.Context, string) (int64, error)) {
	a.HandleFunc("GET /v1/stats/hot", func(w http.ResponseWriter, req *http.Request) {
		n := 10
		if v := req.URL.Query().Get("n"); v != "" {
			k, err := strconv.Atoi(v)
			if err != nil || k < 1 || k > 1000 {
				proxy.WriteJSONError(w, http.StatusBadRequest, "bad_request", "n must be 1..1000")
				return
			}
			n = k
		}
		hot, err := r.Hot(req.Context(), n)
		if err != nil {
			proxy.WriteJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics store unavailable")
			return
		}
		out := make([]map[string]any, 0, len(hot))
		for _, h := range hot {
			out = append(out, map[string]any{"file_id": h.FileID, "accesses": h.Accesses})
		}
		proxy.WriteJSON(w, http.StatusOK, out)
	})
	a.HandleFunc("GET /v1/stats/files/{id}", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		n, err := r.Count(req.Context(), id)
		if err != nil {
			proxy.WriteJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics store unavailable")
			return
		}
		out := map[string]any{"file_id": id, "accesses": n}
		if synced != nil {
			total, err := synced(req.Context(), id)
			if err != nil {
				proxy.WriteJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics database unavailable")
				return
			}
			out["synced"] = total
		}
		proxy.WriteJSON(w, http.StatusOK, out)
	})
	a.HandleFunc("POST /v1/stats/files/{id}/reset", func(w http.ResponseWriter, req *http.Request) {
		id := req.PathValue("id")
		n, err := r.ReadAndReset(req.Context(), id)
		if err != nil {
			proxy.WriteJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics store unavailable")
			return
		}
		proxy.WriteJSON(w, http.StatusOK, map[string]any{"file_id": id, "accesses": n})
	})
	a.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		h, err := rdb.HGetAll(ctx, stats.TaskKeyPrefix+req.PathValue("id")).Result()
		switch {
		case err != nil && !errors.Is(err, redis.Nil):
			proxy.WriteJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "statistics store unavailable")
		case len(h) == 0:
			proxy.WriteJSONError(w, http.StatusNotFound, "not_found", "no such task")
		default:
			h["task_id"] = req.PathValue("id")
			proxy.WriteJSON(w, http.StatusOK, h)
		}
	})
}
