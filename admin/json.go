package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxBody bounds JSON request bodies.
const maxBody = 1 << 20

// decodeJSON reads a JSON request body into v (unknown fields rejected),
// answering 400 itself on failure.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", fmt.Sprintf("request body: %v", err))
		return false
	}
	return true
}

// writeJSON answers with v as JSON; admin answers are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with the standard error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"code": code, "message": message})
}
