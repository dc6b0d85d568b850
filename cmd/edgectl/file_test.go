package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	for _, bad := range []string{"", "http://", "ftp://h:9000", "http://h:9000/path", "http://u:p@h", "h:9000/x",
		"http://h?x=1", "h 9000", "https://h#f", "\\\\h"} {
		if h, _, err := parseEndpoint(bad); err == nil {
			t.Errorf("parseEndpoint(%q) = %q, want an error", bad, h)
		}
	}
	for _, tc := range []struct {
		in, host string
		secure   bool
	}{
		{"127.0.0.1:9000", "127.0.0.1:9000", false},
		{"http://minio.lan:9000", "minio.lan:9000", false},
		{"https://s3.example.com/", "s3.example.com", true},
		{"[::1]:9000", "[::1]:9000", false},
	} {
		h, sec, err := parseEndpoint(tc.in)
		if err != nil || h != tc.host || sec != tc.secure {
			t.Errorf("parseEndpoint(%q) = %q, %v, %v; want %q, %v", tc.in, h, sec, err, tc.host, tc.secure)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9000", "https://s3.example.com/", "http://u@h", "h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, _, err := parseEndpoint(s)
		if err == nil && (h == "" || strings.ContainsAny(h, "/?#@ \\")) {
			t.Fatalf("parseEndpoint(%q) = %q", s, h)
		}
	})
}

func TestResolveS3(t *testing.T) {
	ep := "EDGECTL_S3_ENDPOINT=127.0.0.1:9000"
	for _, tc := range []struct {
		name       string
		env        []string
		fl         s3Flags
		wantAccess string // "" means an error is expected
		wantHost   string
		wantSecure bool
	}{
		{"edgectl first", []string{ep, "EDGECTL_S3_ACCESS_KEY=e", "EDGECTL_S3_SECRET_KEY=es", "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=as"}, s3Flags{}, "e", "127.0.0.1:9000", false},
		{"aws next", []string{ep, "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=as", "MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{}, "a", "127.0.0.1:9000", false},
		{"minio last", []string{ep, "MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{}, "m", "127.0.0.1:9000", false},
		{"flag beats env", []string{ep, "MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{endpoint: "https://s3.lan"}, "m", "s3.lan", true},
		{"-s3-secure", []string{ep, "MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{secure: true}, "m", "127.0.0.1:9000", true},
		// A key from one source is never paired with another source's secret.
		{"half a pair", []string{ep, "EDGECTL_S3_ACCESS_KEY=e", "AWS_SECRET_ACCESS_KEY=as"}, s3Flags{}, "", "", false},
		{"no credentials", []string{ep}, s3Flags{}, "", "", false},
		{"no endpoint", []string{"MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{}, "", "", false},
		{"http and -s3-secure", []string{"MINIO_ROOT_USER=m", "MINIO_ROOT_PASSWORD=ms"}, s3Flags{endpoint: "http://h", secure: true}, "", "", false},
	} {
		st, err := resolveS3(tc.env, tc.fl)
		if tc.wantAccess == "" {
			if err == nil {
				t.Errorf("%s: got %+v, want an error", tc.name, st)
			}
			continue
		}
		if err != nil || st.access != tc.wantAccess || st.secret != tc.wantAccess+"s" || st.host != tc.wantHost || st.secure != tc.wantSecure {
			t.Errorf("%s: got %+v, %v", tc.name, st, err)
		}
	}
}

// Without -src, file put registers metadata only, as before, and prints
// the record it registered.
func TestFilePutMetadataOnly(t *testing.T) {
	api := &fakeAPI{status: 204}
	addr := api.start(t)
	sum := strings.Repeat("AB", 32)
	code, out, errs := runCmd(t, addr, "file", "put", "-id", "10086", "-bucket", "dl", "-key", "iso/a.iso",
		"-size", "42", "-sha256", sum, "-filename", "a.iso", "-content-type", "application/x-iso9660-image")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := map[string]any{"bucket": "dl", "key": "iso/a.iso", "filename": "a.iso", "sha256": strings.ToLower(sum),
		"size": 42.0, "content_type": "application/x-iso9660-image"}
	got, _ := json.Marshal(api.body)
	wantJSON, _ := json.Marshal(want)
	if api.method != "PUT" || api.path != "/v1/files/10086" || string(got) != string(wantJSON) {
		t.Fatalf("request %s %s %s, want PUT /v1/files/10086 %s", api.method, api.path, got, wantJSON)
	}
	var printed map[string]any
	if err := json.Unmarshal([]byte(out), &printed); err != nil || printed["id"] != "10086" || printed["sha256"] != strings.ToLower(sum) {
		t.Fatalf("stdout %q (%v)", out, err)
	}
	for _, args := range [][]string{
		{"-id", "1", "-bucket", "b", "-key", "k", "-sha256", "abc"},
		{"-id", "1", "-bucket", "b", "-key", "a/../b"},
		{"-id", "1", "-bucket", "b", "-key", "k", "-s3-endpoint", "127.0.0.1:9000"},
		{"-id", "1", "-bucket", "b", "-src", "x", "-size", "3"},
		{"-id", "1", "-bucket", "b", "-src", "x", "-sha256", sum},
		{"-id", "1", "-bucket", "b", "-src", "x"}, // no S3 endpoint nor credentials
		{"-id", "1", "-bucket", "b", "-key", "k", "-size", "-1"},
	} {
		api.method = ""
		if code, _, _ := runCmd(t, addr, append([]string{"file", "put"}, args...)...); code != 2 || api.method != "" {
			t.Errorf("file put %v: exit %d, request %q; want 2 and no request", args, code, api.method)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"iso/a.iso": "iso/a.iso", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "$x": "'$x'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
