package origin

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// An origin over HTTPS with a certificate of a private CA: reads succeed
// with ca_file naming that CA, and fail (unverified certificate) without
// it or with another CA.
func TestS3OverTLSWithPrivateCA(t *testing.T) {
	ca := testenv.NewCA(t)
	srv := testenv.NewMinIOTLS(t, ca)
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	defer tr.CloseIdleConnections()
	mc, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Secure: true, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "tls", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(300_000, 9)
	ui := putObject(t, mc, "tls", "obj", data, "application/octet-stream")

	store := func(mod func(*S3Config)) (*S3, error) {
		cfg := S3Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Secure: true,
			CAFile: ca.CertFile, Retries: -1}
		mod(&cfg)
		s, err := NewS3(cfg)
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	s, err := store(func(*S3Config) {})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "tls", "obj")
	if err != nil {
		t.Fatalf("Stat over TLS: %v", err)
	}
	if info.ETag != `"`+ui.ETag+`"` {
		t.Errorf("ETag %s, want %q", info.ETag, ui.ETag)
	}
	if got := readRange(t, s, "tls", "obj", info.ETag, 1000, 200_000); string(got) != string(data[1000:201_000]) {
		t.Error("range over TLS differs from the object")
	}

	other := testenv.NewCA(t)
	for name, mod := range map[string]func(*S3Config){
		"system roots": func(c *S3Config) { c.CAFile = "" },
		"another CA":   func(c *S3Config) { c.CAFile = other.CertFile },
	} {
		s, err := store(mod)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = s.Stat(cctx, "tls", "obj")
		cancel()
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: Stat = %v, want a certificate verification error", name, err)
		}
	}
}

func TestS3CAFileConfig(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testenv.NewCA(t)
	for _, c := range []struct {
		name string
		cfg  S3Config
		want string
	}{
		{"without secure", S3Config{Endpoint: "127.0.0.1:9", CAFile: ca.CertFile}, "ca_file: needs secure"},
		{"missing file", S3Config{Endpoint: "127.0.0.1:9", Secure: true, CAFile: filepath.Join(dir, "none")}, "ca_file:"},
		{"no certificate", S3Config{Endpoint: "127.0.0.1:9", Secure: true, CAFile: junk}, "holds no PEM certificate"},
	} {
		_, err := NewS3(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := NewS3(S3Config{Endpoint: "127.0.0.1:9", Secure: true, CAFile: ca.CertFile}); err != nil {
		t.Errorf("valid ca_file: %v", err)
	}
}
