package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOServer is a running MinIO server on a loopback port.
type MinIOServer struct {
	// Endpoint is "127.0.0.1:port" (plain HTTP).
	Endpoint  string
	AccessKey string
	SecretKey string
	// Proc is the server process.
	Proc *Process
}

var (
	sharedMinIO shared[*MinIOServer]
	bucketSeq   atomic.Int64
)

// MinIO returns the MinIO server shared by the tests of this binary,
// starting it on first use. Tests use their own buckets (NewBucket).
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	return sharedMinIO.get(t, "minio", func(ctx context.Context, dir string) (*MinIOServer, error) { return StartMinIO(ctx, dir) })
}

// NewMinIO starts a MinIO server for this test alone, stopped when the test
// ends. Stop and Start simulate an origin outage on the same address.
func NewMinIO(t testing.TB) *MinIOServer {
	t.Helper()
	return dedicated(t, func(ctx context.Context, dir string) (*MinIOServer, error) { return StartMinIO(ctx, dir) })
}

// StartMinIO starts a MinIO server on a free loopback port with its data
// and log under dir (created if missing) and waits until it serves signed
// requests; env adds server settings (e.g. notification targets). The
// caller ends it with Close.
func StartMinIO(ctx context.Context, dir string, env ...string) (*MinIOServer, error) {
	return startMinIO(ctx, dir, nil, env, (*MinIOServer).Restart)
}

// startMinIO is StartMinIO with extra server arguments (before the
// addresses) and the readiness step to use.
func startMinIO(ctx context.Context, dir string, args, env []string, start func(*MinIOServer, context.Context) error) (*MinIOServer, error) {
	bin, err := MinIOBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: minio dir: %w", err)
	}
	var last error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		cport, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &MinIOServer{
			Endpoint:  "127.0.0.1:" + itoa(port),
			AccessKey: "edgeproxy-test",
			SecretKey: "edgeproxy-test-secret",
		}
		s.Proc = &Process{
			Name: "minio",
			Bin:  bin,
			Args: append(append([]string{"server", "--quiet"}, args...), "--address", s.Endpoint,
				"--console-address", "127.0.0.1:"+itoa(cport), filepath.Join(dir, "data")),
			Env: []string{
				"MINIO_ROOT_USER=" + s.AccessKey,
				"MINIO_ROOT_PASSWORD=" + s.SecretKey,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
				"MINIO_CI_CD=1",
			},
			LogPath: filepath.Join(dir, "minio.log"),
		}
		s.Proc.Env = append(s.Proc.Env, env...)
		if last = start(s, ctx); last == nil {
			return s, nil
		}
		s.Close()
	}
	return nil, last
}

// Restart starts a stopped server again on the same address and data
// directory and waits until it serves signed requests.
func (s *MinIOServer) Restart(ctx context.Context) error {
	if err := s.Proc.Start(); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	mc, err := s.NewClient()
	if err != nil {
		return err
	}
	return s.Proc.WaitReady(ctx, startTimeout, func() bool {
		resp, err := hc.Get("http://" + s.Endpoint + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		// /minio/health/ready answers 200 before MinIO has loaded its
		// users; until then (seconds on a loaded machine) signed
		// requests fail with "Server not initialized yet". Ready means
		// a signed request works (minio/minio#11862: by design).
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err = mc.ListBuckets(lctx)
		return err == nil
	})
}

// Close ends the server; its address refuses connections until Restart.
// It is safe to call more than once.
func (s *MinIOServer) Close() {
	if s != nil {
		s.Proc.Stop()
	}
}

// Stop ends the server; its address refuses connections until Start.
func (s *MinIOServer) Stop(t testing.TB) {
	t.Helper()
	s.Close()
}

// Start restarts a stopped server on the same address and data directory.
func (s *MinIOServer) Start(t testing.TB) {
	t.Helper()
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// NewClient returns a minio-go client for the server.
func (s *MinIOServer) NewClient() (*minio.Client, error) {
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: minio client: %w", err)
	}
	return c, nil
}

// Client returns a minio-go client for the server.
func (s *MinIOServer) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket with a name unique to this test binary.
func (s *MinIOServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", os.Getpid(), bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: make bucket %s: %v", name, err)
	}
	return name
}
