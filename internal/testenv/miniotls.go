package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// NewMinIOTLS starts a MinIO server for this test alone that speaks only
// HTTPS, with a certificate for 127.0.0.1 issued by ca (MinIO reads
// public.crt and private.key from its --certs-dir). Clients must trust ca.
func NewMinIOTLS(t testing.TB, ca *CA) *MinIOServer {
	t.Helper()
	bin, err := lookBinary("TESTENV_MINIO_BIN", "minio", filepath.Join(cacheDir(), "bin", "minio"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	ca.Issue(t, 100, filepath.Join(certs, "public.crt"), filepath.Join(certs, "private.key"), "127.0.0.1", "localhost")
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	t.Cleanup(tr.CloseIdleConnections)
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cport, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s := &MinIOServer{Endpoint: "127.0.0.1:" + itoa(port), AccessKey: "edgeproxy-test", SecretKey: "edgeproxy-test-secret"}
		s.proc = &process{
			name: "minio-tls",
			bin:  bin,
			args: []string{"server", "--quiet", "--certs-dir", certs, "--address", s.Endpoint,
				"--console-address", "127.0.0.1:" + itoa(cport), filepath.Join(dir, "data")},
			env: []string{
				"MINIO_ROOT_USER=" + s.AccessKey,
				"MINIO_ROOT_PASSWORD=" + s.SecretKey,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
				"MINIO_CI_CD=1",
			},
			logPath: filepath.Join(dir, "minio.log"),
		}
		if last = s.startTLS(tr); last == nil {
			t.Cleanup(s.proc.stop)
			return s
		}
		s.proc.stop()
	}
	t.Fatal(last)
	return nil
}

// startTLS is start over HTTPS: ready when a signed request through tr
// succeeds.
func (s *MinIOServer) startTLS(tr *http.Transport) error {
	if err := s.proc.start(); err != nil {
		return err
	}
	mc, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: true, Transport: tr})
	if err != nil {
		return fmt.Errorf("testenv: minio client: %w", err)
	}
	return s.proc.waitReady(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := mc.ListBuckets(ctx)
		return err == nil
	})
}
