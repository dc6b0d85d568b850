package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/auth"
)

// TestTokenCreateBucket: -bucket sends the bucket beside the key, so the API
// mints the host-route form; without it the body has no bucket.
func TestTokenCreateBucket(t *testing.T) {
	api := &fakeAPI{status: 201, answer: `{"token":"abcdefghijklmnop","expires_at":"2026-01-01T00:00:00Z","file_id":"/premium/report.pdf"}`}
	addr := api.start(t)
	code, out, errs := runCmd(t, addr, "token", "create", "-file", "report.pdf", "-bucket", "premium")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if api.body["file_id"] != "report.pdf" || api.body["bucket"] != "premium" {
		t.Fatalf("body %v, want file_id report.pdf and bucket premium", api.body)
	}
	if !strings.Contains(out, `"file_id":"/premium/report.pdf"`) || strings.Contains(out, `"url"`) {
		t.Fatalf("stdout %q", out)
	}
	if code, _, errs := runCmd(t, addr, "token", "create", "-file", "10086"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, ok := api.body["bucket"]; ok {
		t.Fatalf("body %v has a bucket without -bucket", api.body)
	}
}

// TestRealTokenCreateForBucket: a token made with -bucket opens that key in
// that bucket only (auth.ObjectFileID), never the same name under
// /download/ or in another bucket, and the API hands out no /download/ URL
// for it.
func TestRealTokenCreateForBucket(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	code, out, errs := e.run(t, nil, "token", "create", "-file", "docs/report.pdf", "-bucket", "premium")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errs)
	}
	var created struct {
		Token  string `json:"token"`
		FileID string `json:"file_id"`
		URL    string `json:"url"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if created.FileID != "/premium/docs/report.pdf" || created.URL != "" {
		t.Fatalf("file_id %q, url %q; want /premium/docs/report.pdf and no url", created.FileID, created.URL)
	}
	if _, err := e.verifier.Verify(ctx, created.Token, auth.ObjectFileID("premium", "docs/report.pdf"), localhost); err != nil {
		t.Fatalf("Verify on its bucket: %v", err)
	}
	for _, other := range []string{"docs/report.pdf", "premium/docs/report.pdf", auth.ObjectFileID("public", "docs/report.pdf")} {
		if _, err := e.verifier.Verify(ctx, created.Token, other, localhost); !errors.Is(err, auth.ErrTokenWrongFile) {
			t.Errorf("Verify for %q: %v, want token_wrong_file", other, err)
		}
	}
	// A bucket that is not a bucket name, or a key that is not a key.
	for _, args := range [][]string{
		{"-file", "report.pdf", "-bucket", "a/b"},
		{"-file", "../report.pdf", "-bucket", "premium"},
	} {
		code, out, errs := e.run(t, nil, append([]string{"token", "create"}, args...)...)
		if code != 1 || out != "" || !strings.Contains(errs, "bad_request") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and bad_request", args, code, out, errs)
		}
	}
}
