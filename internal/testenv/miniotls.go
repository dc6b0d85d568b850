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
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	ca.Issue(t, 100, filepath.Join(certs, "public.crt"), filepath.Join(certs, "private.key"), "127.0.0.1", "localhost")
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig()}
	t.Cleanup(tr.CloseIdleConnections)
	s, err := startMinIO(context.Background(), dir, []string{"--certs-dir", certs}, nil,
		func(s *MinIOServer, ctx context.Context) error { return s.startTLS(ctx, tr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// startTLS is start over HTTPS: ready when a signed request through tr
// succeeds.
func (s *MinIOServer) startTLS(ctx context.Context, tr *http.Transport) error {
	if err := s.Proc.Start(); err != nil {
		return err
	}
	mc, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: true, Transport: tr})
	if err != nil {
		return fmt.Errorf("testenv: minio client: %w", err)
	}
	return s.Proc.WaitReady(ctx, startTimeout, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := mc.ListBuckets(lctx)
		return err == nil
	})
}
