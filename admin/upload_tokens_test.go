package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/upload"
)

type fakeUploadTokens struct {
	got upload.Grant
	err error
}

func (f *fakeUploadTokens) CreateToken(_ context.Context, g upload.Grant) (string, error) {
	f.got = g
	return "uptok-0123456789abcdef", f.err
}

func (f *fakeUploadTokens) Prefix() string { return "/uploads/" }

// TestUploadTokens: the route hands the grant to the token writer, with
// the default TTL when none is given; a refused grant is 400, a store
// failure 503.
func TestUploadTokens(t *testing.T) {
	const key = "admin-key-0123456789"
	f := &fakeUploadTokens{}
	a := New(Config{Key: key}, Deps{UploadTokens: f, DownloadBase: "https://edge.example", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	post := func(body string) (int, map[string]string) {
		req := httptest.NewRequest("POST", "/v1/upload-tokens", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		var out map[string]string
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	before := time.Now()
	code, out := post(`{"bucket":"up","prefix":"in/","file_id":"f1","max_size":1048576,"ttl":"90m"}`)
	if code != 201 || out["token"] != "uptok-0123456789abcdef" || out["endpoint"] != "https://edge.example/uploads/" {
		t.Fatalf("%d %v", code, out)
	}
	if want := (upload.Grant{Bucket: "up", Prefix: "in/", FileID: "f1", MaxSize: 1 << 20, TTL: 90 * time.Minute}); f.got != want {
		t.Fatalf("grant %+v, want %+v", f.got, want)
	}
	exp, err := time.Parse(time.RFC3339, out["expires_at"])
	if err != nil || exp.Before(before.Add(90*time.Minute-time.Second)) || exp.After(time.Now().Add(90*time.Minute)) {
		t.Fatalf("expires_at %q: want 90m from now", out["expires_at"])
	}
	if code, _ := post(`{"bucket":"up","key":"a.bin"}`); code != 201 || f.got.TTL != time.Hour {
		t.Fatalf("no ttl: %d, ttl %v; want 201 and 1h", code, f.got.TTL)
	}
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"bucket":"up","key":"a","ttl":"soon"}`, 400, "bad_request"},
		{`{"bucket":"up","key":"a","ttl":"1ms"}`, 400, "bad_request"},
		{`{"bucket":"up","key":"a","user_id":"9"}`, 400, "bad_json"},
	} {
		if code, out := post(c.body); code != c.status || out["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.body, code, out, c.status, c.code)
		}
	}
	f.err = fmt.Errorf("upload: token: give exactly one of key and prefix: %w", upload.ErrInvalidGrant)
	if code, out := post(`{"bucket":"up"}`); code != 400 || out["code"] != "bad_request" {
		t.Errorf("invalid grant: %d %v, want 400 bad_request", code, out)
	}
	f.err = errors.New("upload: token: store: connection refused")
	if code, out := post(`{"bucket":"up","key":"a"}`); code != 503 || out["code"] != "store_unavailable" {
		t.Errorf("store down: %d %v, want 503 store_unavailable", code, out)
	}
}
