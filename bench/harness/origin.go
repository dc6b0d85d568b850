package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

const benchBucket = "bench"

// object is one seeded object. Its content is a pseudo-random stream
// seeded by its key, so every object is distinct (no cache can share bytes
// between them) and a sample can be checked against the origin.
type object struct {
	Key  string
	Size int64
}

// The hot objects every scenario but the cold miss reads.
var (
	hot4K   = object{"hot-4k", 4 << 10}
	hot1M   = object{"hot-1m", 1 << 20}
	hot256M = object{"hot-256m", 256 << 20}
)

// coldObject is the object one server reads in one cold-miss round: a
// distinct key per server and round, so each run starts cold without
// purging anything.
func coldObject(server string, round int) object {
	return object{fmt.Sprintf("cold-%s-r%d", server, round), 256 << 20}
}

// objectReader returns the content of o.
func objectReader(o object) io.Reader {
	var seed [32]byte
	copy(seed[:], o.Key)
	return io.LimitReader(rand.NewChaCha8(seed), o.Size)
}

// origin is the MinIO server all three caches read from, started by
// testenv as the tests start theirs.
type origin struct {
	*testenv.MinIOServer
	client *minio.Client
}

// ensureMinIO installs the MinIO server the way scripts/test.sh does when
// testenv cannot find it.
func ensureMinIO(ctx context.Context, root string) error {
	if _, err := testenv.MinIOBinary(); err == nil {
		return nil
	}
	bin := testenv.MinIOInstallPath()
	script, err := os.ReadFile(filepath.Join(root, "scripts", "test.sh"))
	if err != nil {
		return fmt.Errorf("harness: no minio binary and no scripts/test.sh to read its version from: %w", err)
	}
	m := regexp.MustCompile(`(?m)^MINIO_VERSION=(\S+)`).FindSubmatch(script)
	if m == nil {
		return fmt.Errorf("harness: MINIO_VERSION not found in scripts/test.sh")
	}
	version := string(m[1])
	logf("installing minio@%s into %s (one time, a few minutes)", version, filepath.Dir(bin))
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	if _, err := runCmd(ctx, 15*time.Minute, os.TempDir(),
		[]string{"GOBIN=" + filepath.Dir(bin), "GOFLAGS=-mod=mod"},
		"go", "install", "github.com/minio/minio@"+version); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(filepath.Dir(bin), "minio.version"), []byte(version+"\n"), 0o644)
	_, err = testenv.MinIOBinary()
	return err
}

// startOrigin starts MinIO with its data under dir.
func startOrigin(ctx context.Context, dir string) (*origin, error) {
	s, err := testenv.StartMinIO(ctx, dir)
	if err != nil {
		return nil, err
	}
	c, err := s.NewClient()
	if err != nil {
		s.Close()
		return nil, err
	}
	return &origin{MinIOServer: s, client: c}, nil
}

// seed creates the bucket, makes it anonymously readable (so nginx and
// Varnish fetch without signing) and uploads objs.
func (o *origin) seed(ctx context.Context, objs []object) error {
	if err := o.client.MakeBucket(ctx, benchBucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("harness: make bucket: %w", err)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",`+
		`"Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, benchBucket)
	if err := o.client.SetBucketPolicy(ctx, benchBucket, policy); err != nil {
		return fmt.Errorf("harness: set bucket policy: %w", err)
	}
	for _, obj := range objs {
		_, err := o.client.PutObject(ctx, benchBucket, obj.Key, objectReader(obj), obj.Size,
			minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 64 << 20})
		if err != nil {
			return fmt.Errorf("harness: put %s: %w", obj.Key, err)
		}
	}
	return nil
}

// read returns bytes [off, off+n) of an object straight from MinIO
// (anonymously, as the caches see it), to check samples against.
func (o *origin) read(ctx context.Context, key string, off, n int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.Endpoint+"/"+benchBucket+"/"+key, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("harness: origin read %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("harness: origin read %s: status %d (is the bucket policy set?)", key, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, n+1))
}
