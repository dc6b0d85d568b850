package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/auth"
)

// fakeStore holds files 1 (hash aa..) and 2, or fails every call with err.
type fakeStore struct {
	err   error
	after int64
	limit int
}

var fakeFile = auth.FileMeta{ID: "1", Bucket: "b", Key: "k", SHA256: strings.Repeat("a", 64), Size: 3}

func (f *fakeStore) Create(ctx context.Context, m auth.FileMeta) (auth.FileMeta, bool, error) {
	if f.err != nil {
		return auth.FileMeta{}, false, f.err
	}
	if m.SHA256 == fakeFile.SHA256 {
		return fakeFile, false, nil
	}
	if m.Size < 0 {
		return auth.FileMeta{}, false, fmt.Errorf("%w: negative size", auth.ErrInvalidSpec)
	}
	m.ID = "3"
	return m, true, nil
}

func (f *fakeStore) ByHash(ctx context.Context, h string) (auth.FileMeta, error) {
	if f.err != nil {
		return auth.FileMeta{}, f.err
	}
	if h != fakeFile.SHA256 {
		return auth.FileMeta{}, auth.ErrFileNotFound
	}
	return fakeFile, nil
}

func (f *fakeStore) List(ctx context.Context, after int64, limit int) ([]auth.FileMeta, error) {
	f.after, f.limit = after, limit
	return []auth.FileMeta{fakeFile}, f.err
}

func (f *fakeStore) Delete(ctx context.Context, id string) error {
	if f.err != nil {
		return f.err
	}
	if id != "1" {
		return auth.ErrFileNotFound
	}
	return nil
}

type fakeSynced struct{ err error }

func (f fakeSynced) SyncedTotal(ctx context.Context, id string) (int64, error) { return 40, f.err }

// TestCatalogStoreRoutes: the routes of a PostgreSQL-backed catalog, and
// the synced total beside the live count.
func TestCatalogStoreRoutes(t *testing.T) {
	const key = "admin-key-0123456789"
	store := &fakeStore{}
	ok := New(Config{Key: key}, Deps{CatalogStore: store, Stats: fakeStats{}, Synced: fakeSynced{}})
	down := New(Config{Key: key}, Deps{CatalogStore: &fakeStore{err: errors.New("pg down")}, Stats: fakeStats{}, Synced: fakeSynced{err: errors.New("pg down")}})
	hash := fakeFile.SHA256
	for _, c := range []struct {
		name       string
		api        *API
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"create", ok, "POST", "/v1/files", `{"bucket":"b","key":"new.bin","size":1}`, 201, `"id":"3"`},
		{"create known content", ok, "POST", "/v1/files", `{"bucket":"b","key":"x","sha256":"` + hash + `"}`, 200, `"id":"1"`},
		{"create bad key", ok, "POST", "/v1/files", `{"bucket":"b","key":"../x"}`, 400, `"code":"bad_request"`},
		{"create no bucket", ok, "POST", "/v1/files", `{"key":"x"}`, 400, `"code":"bad_request"`},
		{"create refused", ok, "POST", "/v1/files", `{"bucket":"b","key":"x","size":-1}`, 400, `"code":"bad_request"`},
		{"by hash", ok, "GET", "/v1/files?sha256=" + hash, "", 200, `[{"id":"1"`},
		{"by unknown hash", ok, "GET", "/v1/files?sha256=" + strings.Repeat("b", 64), "", 200, `[]`},
		{"list", ok, "GET", "/v1/files?after=7&limit=2", "", 200, `[{"id":"1"`},
		{"list bad limit", ok, "GET", "/v1/files?limit=0", "", 400, `"code":"bad_request"`},
		{"list bad after", ok, "GET", "/v1/files?after=x", "", 400, `"code":"bad_request"`},
		{"delete", ok, "DELETE", "/v1/files/1", "", 204, ``},
		{"delete unknown", ok, "DELETE", "/v1/files/9", "", 404, `"code":"not_found"`},
		{"synced", ok, "GET", "/v1/stats/files/f", "", 200, `{"accesses":5,"file_id":"f","synced":40}`},
		{"create down", down, "POST", "/v1/files", `{"bucket":"b","key":"x"}`, 503, `"code":"store_unavailable"`},
		{"list down", down, "GET", "/v1/files", "", 503, `"code":"store_unavailable"`},
		{"delete down", down, "DELETE", "/v1/files/1", "", 503, `"code":"store_unavailable"`},
		{"synced down", down, "GET", "/v1/stats/files/f", "", 503, `"code":"store_unavailable"`},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+key)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		c.api.ServeHTTP(rec, req)
		body := strings.TrimSpace(rec.Body.String())
		if rec.Code != c.wantStatus || !strings.Contains(body, c.wantBody) || (body != "" && !json.Valid(rec.Body.Bytes())) {
			t.Errorf("%s: %d %s, want %d with %s", c.name, rec.Code, body, c.wantStatus, c.wantBody)
		}
	}
	if store.after != 7 || store.limit != 2 {
		t.Errorf("list asked after=%d limit=%d, want 7 and 2", store.after, store.limit)
	}
}
