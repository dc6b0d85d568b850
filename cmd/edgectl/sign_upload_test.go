package main

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
)

// TestSignUpload: sign -upload prints a creation URL whose scope verifies
// with the proxy's signer exactly as the upload endpoint reads it (decoded
// query values, the escaped path), and not once any of it is changed.
func TestSignUpload(t *testing.T) {
	now := time.Now()
	code, out, errs := runSign(t, signEnv, "-upload", "-url", "https://Edge.Example.com:8443/uploads/", "-bucket", "up",
		"-prefix", "in/a b/", "-file-id", "f 1", "-max-size", "1048576", "-ttl", "1h")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	signed := strings.TrimSuffix(out, "\n")
	if !strings.HasPrefix(signed, "https://Edge.Example.com:8443/uploads/?") || strings.Contains(signed, "\n") {
		t.Fatalf("signed URL %q", signed)
	}
	r := requestFor(t, signed)
	sc := auth.UploadScope{Bucket: r.query.Get("bucket"), Key: r.query.Get("key"), Prefix: r.query.Get("prefix"), FileID: r.query.Get("file_id")}
	sc.MaxSize, _ = strconv.ParseInt(r.query.Get("max_size"), 10, 64)
	if want := (auth.UploadScope{Bucket: "up", Prefix: "in/a b/", FileID: "f 1", MaxSize: 1 << 20}); sc != want {
		t.Fatalf("scope %+v, want %+v", sc, want)
	}
	s := proxySigner(t, false)
	verify := func(host, path string, sc auth.UploadScope, at time.Time) error {
		return s.VerifyUpload(host, path, sc, []byte(r.query.Get("expires")), []byte(r.query.Get("kid")), []byte(r.query.Get("sig")), "", at)
	}
	if err := verify("edge.example.com:443", r.path, sc, now); err != nil {
		t.Fatalf("VerifyUpload: %v", err)
	}
	bigger := sc
	bigger.MaxSize++
	if err := verify("edge.example.com", r.path, bigger, now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Errorf("bigger max_size: %v, want signature_invalid", err)
	}
	if err := verify("edge.example.com", "/uploads/x", sc, now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Errorf("other path: %v, want signature_invalid", err)
	}
	// A download signature check never accepts it.
	if err := r.verify(s, "POST", "", now); !errors.Is(err, auth.ErrSignatureInvalid) {
		t.Errorf("as a download URL: %v, want signature_invalid", err)
	}
	if err := verify("edge.example.com", r.path, sc, now.Add(2*time.Hour)); !errors.Is(err, auth.ErrSignatureExpired) {
		t.Errorf("2h later: %v, want signature_expired", err)
	}
}

func TestSignUploadErrors(t *testing.T) {
	base := []string{"-url", "https://edge.example.com/uploads/", "-ttl", "1h"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no bucket", append([]string{"-upload", "-key", "a"}, base...)},
		{"neither key nor prefix", append([]string{"-upload", "-bucket", "b"}, base...)},
		{"key and prefix", append([]string{"-upload", "-bucket", "b", "-key", "a", "-prefix", "p/"}, base...)},
		{"negative size", append([]string{"-upload", "-bucket", "b", "-key", "a", "-max-size", "-1"}, base...)},
		{"method", append([]string{"-upload", "-bucket", "b", "-key", "a", "-method", "PUT"}, base...)},
		{"query", []string{"-upload", "-bucket", "b", "-key", "a", "-url", "https://edge.example.com/uploads/?x=1", "-ttl", "1h"}},
		{"scope without -upload", append([]string{"-bucket", "b", "-key", "a"}, base...)},
	} {
		code, out, errs := runSign(t, signEnv, tc.args...)
		if code != 2 || out != "" || strings.Contains(errs, secret1) || strings.Contains(errs, secret2) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2, nothing, no secret", tc.name, code, out, errs)
		}
	}
}
