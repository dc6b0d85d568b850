package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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
	proc      *process
}

var (
	sharedMinIOOnce sync.Once
	sharedMinIO     *MinIOServer
	sharedMinIOErr  error
	bucketSeq       atomic.Int64
)

// MinIO returns the MinIO server shared by the tests of this binary,
// starting it on first use. Tests use their own buckets (NewBucket).
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	sharedMinIOOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgeproxy-minio-")
		if err != nil {
			sharedMinIOErr = err
			return
		}
		sharedMinIO, sharedMinIOErr = startMinIO(dir)
		registerShared(func() {
			if sharedMinIO != nil {
				sharedMinIO.proc.stop()
			}
			os.RemoveAll(dir)
		})
	})
	if sharedMinIOErr != nil {
		t.Fatal(sharedMinIOErr)
	}
	return sharedMinIO
}

// NewMinIO starts a MinIO server for this test alone, stopped when the test
// ends. Stop and Start simulate an origin outage on the same address.
func NewMinIO(t testing.TB) *MinIOServer {
	t.Helper()
	s, err := startMinIO(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.proc.stop)
	return s
}

// startMinIO starts MinIO with its data in dir; env adds server settings
// (e.g. notification targets).
func startMinIO(dir string, env ...string) (*MinIOServer, error) {
	bin, err := lookBinary("TESTENV_MINIO_BIN", "minio", filepath.Join(cacheDir(), "bin", "minio"))
	if err != nil {
		return nil, err
	}
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cport, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &MinIOServer{
			Endpoint:  "127.0.0.1:" + itoa(port),
			AccessKey: "edgeproxy-test",
			SecretKey: "edgeproxy-test-secret",
		}
		s.proc = &process{
			name: "minio",
			bin:  bin,
			args: []string{"server", "--quiet", "--address", s.Endpoint,
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
		s.proc.env = append(s.proc.env, env...)
		if last = s.start(); last == nil {
			return s, nil
		}
		s.proc.stop()
	}
	return nil, last
}

func (s *MinIOServer) start() error {
	if err := s.proc.start(); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	mc, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		return fmt.Errorf("testenv: minio client: %w", err)
	}
	return s.proc.waitReady(func() bool {
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
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = mc.ListBuckets(ctx)
		return err == nil
	})
}

// Stop ends the server; its address refuses connections until Start.
func (s *MinIOServer) Stop(t testing.TB) {
	t.Helper()
	s.proc.stop()
}

// Start restarts a stopped server on the same address and data directory.
func (s *MinIOServer) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Client returns a minio-go client for the server.
func (s *MinIOServer) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
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
