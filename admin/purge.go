package admin

import "net/http"

// Purger drops cached objects (cache.Cache implements it).
type Purger interface {
	// Purge drops one object and returns how many entries it dropped.
	Purge(bucket, key string) int
	// PurgePrefix drops every object whose key starts with prefix.
	PurgePrefix(bucket, prefix string) int
}

// purge is POST /v1/purge {bucket, key | prefix} -> {purged}.
func (a *API) purge(p Purger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Bucket string `json:"bucket"`
			Key    string `json:"key"`
			Prefix string `json:"prefix"`
		}
		if !decodeJSON(w, r, &req) {
			return
		}
		if req.Bucket == "" || (req.Key == "") == (req.Prefix == "") {
			writeError(w, http.StatusBadRequest, "bad_request", "give bucket and exactly one of key or prefix")
			return
		}
		var n int
		if req.Key != "" {
			n = p.Purge(req.Bucket, req.Key)
		} else {
			n = p.PurgePrefix(req.Bucket, req.Prefix)
		}
		a.log.Info("admin purge", "bucket", req.Bucket, "key", req.Key, "prefix", req.Prefix, "purged", n)
		writeJSON(w, http.StatusOK, map[string]int{"purged": n})
	}
}
