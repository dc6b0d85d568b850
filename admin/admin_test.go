package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakePurger struct{ keys, prefixes []string }

func (f *fakePurger) Purge(bucket, key string) int {
	f.keys = append(f.keys, bucket+"/"+key)
	return 1
}

func (f *fakePurger) PurgePrefix(bucket, prefix string) int {
	f.prefixes = append(f.prefixes, bucket+"/"+prefix)
	return 7
}

func TestAdminAuthAndPurge(t *testing.T) {
	const key = "admin-key-0123456789"
	p := &fakePurger{}
	a := New(Config{Key: key}, Deps{Purger: p, CacheStats: func() any { return map[string]int{"x": 1} }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	cases := []struct {
		name, method, path, auth, body string
		wantStatus                     int
		wantCode                       string
	}{
		{"no key", "POST", "/v1/purge", "", `{"bucket":"b","key":"k"}`, 401, "admin_unauthorized"},
		{"wrong key", "POST", "/v1/purge", "Bearer nope", `{"bucket":"b","key":"k"}`, 401, "admin_unauthorized"},
		{"key as basic", "POST", "/v1/purge", "Basic " + key, `{"bucket":"b","key":"k"}`, 401, "admin_unauthorized"},
		{"bad json", "POST", "/v1/purge", "Bearer " + key, `{"bucket":`, 400, "bad_json"},
		{"unknown field", "POST", "/v1/purge", "Bearer " + key, `{"bucket":"b","kee":"k"}`, 400, "bad_json"},
		{"key and prefix", "POST", "/v1/purge", "Bearer " + key, `{"bucket":"b","key":"k","prefix":"p"}`, 400, "bad_request"},
		{"neither", "POST", "/v1/purge", "Bearer " + key, `{"bucket":"b"}`, 400, "bad_request"},
		{"wrong method", "GET", "/v1/purge", "Bearer " + key, ``, 405, ""},
		{"purge key", "POST", "/v1/purge", "Bearer " + key, `{"bucket":"b","key":"k"}`, 200, ""},
		{"purge prefix", "POST", "/v1/purge", "Bearer " + key, `{"bucket":"b","prefix":"dir/"}`, 200, ""},
		{"stats", "GET", "/v1/stats", "Bearer " + key, ``, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code != c.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, c.wantStatus, rec.Body)
			}
			if c.wantCode != "" {
				var e struct{ Code string }
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != c.wantCode {
					t.Fatalf("body %s: code %q, want %q (%v)", rec.Body, e.Code, c.wantCode, err)
				}
			}
		})
	}
	if strings.Join(p.keys, ",") != "b/k" || strings.Join(p.prefixes, ",") != "b/dir/" {
		t.Fatalf("purged keys %v prefixes %v", p.keys, p.prefixes)
	}
}

func TestAdminConfigValidate(t *testing.T) {
	c, err := Config{}.WithDefaults()
	if err != nil || c.Enabled() || c.Listen != "127.0.0.1:9090" {
		t.Fatalf("empty config: err %v enabled %v listen %q", err, c.Enabled(), c.Listen)
	}
	if _, err := (Config{Key: "short"}).WithDefaults(); err == nil {
		t.Fatal("short key accepted")
	}
	c, err = Config{Key: "0123456789abcdef", Listen: "off"}.WithDefaults()
	if err != nil || c.Enabled() {
		t.Fatalf("listen off: err %v enabled %v", err, c.Enabled())
	}
}
