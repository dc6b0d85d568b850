package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeAPI records the request it gets and answers with status and body.
type fakeAPI struct {
	method, path, auth string
	body               map[string]any
	status             int
	answer             string
}

func (f *fakeAPI) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.method, f.path, f.auth = r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization")
		f.body = nil
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &f.body); err != nil {
				t.Errorf("request body %q: %v", b, err)
			}
		}
		w.WriteHeader(f.status)
		io.WriteString(w, f.answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func runCmd(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := []string{"EDGECTL_ADDR=" + addr, "EDGECTL_ADMIN_KEY=s3cret"}
	code := run(args, env, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenCreate(t *testing.T) {
	api := &fakeAPI{status: 201, answer: `{"token":"abcdefghijklmnop","expires_at":"2026-01-01T00:00:00Z"}`}
	addr := api.start(t)
	code, out, errs := runCmd(t, addr, "token", "create", "-file", "10086", "-user", "9527",
		"-ip", "10.0.0.0/8, 2001:db8::1", "-max-uses", "1", "-rate", "1048576", "-ttl", "90m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if api.method != "POST" || api.path != "/v1/tokens" || api.auth != "Bearer s3cret" {
		t.Fatalf("request %s %s auth %q", api.method, api.path, api.auth)
	}
	want := map[string]any{"file_id": "10086", "user_id": "9527", "allowed_ip": []any{"10.0.0.0/8", "2001:db8::1"},
		"max_uses": 1.0, "rate": 1048576.0, "ttl": "1h30m0s"}
	got, _ := json.Marshal(api.body)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Fatalf("body %s, want %s", got, wantJSON)
	}
	if !strings.Contains(out, `"token":"abcdefghijklmnop"`) || !strings.Contains(out, `"expires_at":"2026-01-01T00:00:00Z"`) {
		t.Fatalf("stdout %q", out)
	}
}

func TestRevokeAndFiles(t *testing.T) {
	api := &fakeAPI{status: 204}
	addr := api.start(t)
	if code, _, errs := runCmd(t, addr, "token", "revoke", "tok/with+odd"); code != 0 || api.method != "DELETE" || api.path != "/v1/tokens/tok%2Fwith+odd" {
		t.Fatalf("revoke: exit %d %s; request %s %s", code, errs, api.method, api.path)
	}
	if code, _, errs := runCmd(t, addr, "file", "put", "-id", "10086", "-bucket", "dl", "-key", "a/b.iso", "-size", "42"); code != 0 ||
		api.method != "PUT" || api.path != "/v1/files/10086" || api.body["key"] != "a/b.iso" || api.body["size"] != 42.0 {
		t.Fatalf("file put: exit %d %s; request %s %s %v", code, errs, api.method, api.path, api.body)
	}
	api.status, api.answer = 200, `{"purged":3}`
	if code, out, _ := runCmd(t, addr, "purge", "-bucket", "dl", "-prefix", "iso/"); code != 0 || api.method != "POST" ||
		api.path != "/v1/purge" || api.body["prefix"] != "iso/" || api.body["key"] != nil || strings.TrimSpace(out) != api.answer {
		t.Fatalf("purge: exit %d out %q request %s %s %v", code, out, api.method, api.path, api.body)
	}
	api.answer = `{"hits":1}`
	if code, out, _ := runCmd(t, addr, "stats"); code != 0 || api.method != "GET" || api.path != "/v1/stats" || strings.TrimSpace(out) != api.answer {
		t.Fatalf("stats: exit %d out %q", code, out)
	}
	api.answer = `{"id":"10086","bucket":"dl"}`
	if code, out, _ := runCmd(t, addr, "file", "get", "10086"); code != 0 || api.method != "GET" || strings.TrimSpace(out) != api.answer {
		t.Fatalf("file get: exit %d out %q", code, out)
	}
}

func TestErrors(t *testing.T) {
	api := &fakeAPI{status: 404, answer: `{"code":"token_not_found","message":"no such token"}`}
	addr := api.start(t)
	code, _, errs := runCmd(t, addr, "token", "revoke", "SECRETTOKENVALUE")
	if code != 1 || !strings.Contains(errs, "token_not_found: no such token") || strings.Contains(errs, "SECRETTOKENVALUE") {
		t.Fatalf("exit %d, stderr %q: want 1, the API's error, no token", code, errs)
	}
	// Unreachable API: the transport error must not repeat the token either.
	code, _, errs = runCmd(t, "http://127.0.0.1:1", "token", "revoke", "SECRETTOKENVALUE")
	if code != 1 || strings.Contains(errs, "SECRETTOKENVALUE") {
		t.Fatalf("unreachable: exit %d, stderr %q", code, errs)
	}
	for _, args := range [][]string{
		{},
		{"token"},
		{"token", "create"}, // -file missing
		{"token", "create", "-file", "1", "-max-uses", "-1"},
		{"token", "revoke"},
		{"file", "put", "-id", "1"}, // bucket, key missing
		{"file", "get"},
		{"user", "list"},
		{"purge", "-bucket", "b"}, // neither key nor prefix
		{"purge", "-bucket", "b", "-key", "k", "-prefix", "p"},
		{"stats", "extra"},
		{"-addr", "ftp://x", "file", "get", "1"},
	} {
		if code, _, _ := runCmd(t, addr, args...); code != 2 {
			t.Errorf("edgectl %v: exit %d, want 2", args, code)
		}
	}
}

func TestKeyFallback(t *testing.T) {
	api := &fakeAPI{status: 200, answer: `{}`}
	addr := api.start(t)
	var out, errb bytes.Buffer
	if code := run([]string{"-addr", addr, "stats"}, []string{"EDGEPROXY_ADMIN_KEY=proxykey"}, &out, &errb); code != 0 || api.auth != "Bearer proxykey" {
		t.Fatalf("exit %d (%s), auth %q", code, errb.String(), api.auth)
	}
}
