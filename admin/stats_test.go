package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/stats"
)

// fakeStats answers from fixed values, or fails every call with err.
type fakeStats struct{ err error }

func (f fakeStats) Hot(ctx context.Context, n int) ([]stats.HotFile, error) {
	return []stats.HotFile{{FileID: "a", Accesses: 3}}, f.err
}

func (f fakeStats) Count(ctx context.Context, id string) (int64, error) { return 5, f.err }

func (f fakeStats) ReadAndReset(ctx context.Context, id string) (int64, error) { return 7, f.err }

func (f fakeStats) Task(ctx context.Context, id string) (map[string]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	if id != "t1" {
		return nil, stats.ErrNoTask
	}
	return map[string]string{"status": "COMPLETED"}, nil
}

// TestStatsRoutes: the statistics routes answer what the reader returns,
// 404 for a task that does not exist and 503 when the store fails.
func TestStatsRoutes(t *testing.T) {
	const key = "admin-key-0123456789"
	ok := New(Config{Key: key}, Deps{Stats: fakeStats{}})
	down := New(Config{Key: key}, Deps{Stats: fakeStats{err: errors.New("redis down")}})
	for _, c := range []struct {
		name       string
		api        *API
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"hot", ok, "GET", "/v1/stats/hot?n=5", 200, `[{"accesses":3,"file_id":"a"}]`},
		{"hot n too large", ok, "GET", "/v1/stats/hot?n=1001", 400, `"code":"bad_request"`},
		{"count", ok, "GET", "/v1/stats/files/f", 200, `{"accesses":5,"file_id":"f"}`},
		{"reset", ok, "POST", "/v1/stats/files/f/reset", 200, `{"accesses":7,"file_id":"f"}`},
		{"task", ok, "GET", "/v1/tasks/t1", 200, `{"status":"COMPLETED","task_id":"t1"}`},
		{"no task", ok, "GET", "/v1/tasks/t2", 404, `"code":"not_found"`},
		{"hot down", down, "GET", "/v1/stats/hot", 503, `"code":"store_unavailable"`},
		{"count down", down, "GET", "/v1/stats/files/f", 503, `"code":"store_unavailable"`},
		{"task down", down, "GET", "/v1/tasks/t1", 503, `"code":"store_unavailable"`},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		c.api.ServeHTTP(rec, req)
		body := strings.TrimSpace(rec.Body.String())
		if rec.Code != c.wantStatus || !strings.Contains(body, c.wantBody) || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s: %d %s, want %d with %s", c.name, rec.Code, body, c.wantStatus, c.wantBody)
		}
	}
}
