//go:build unix

package origin

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/minio/minio-go/v7"
)

// benchRead opens and reads a 64 KiB range n times in parallel: the cost of
// one cache-miss chunk fetch from each store, excluding the client side.
func benchRead(b *testing.B, s Store, bucket, key, etag string) {
	const chunk = 64 << 10
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		for pb.Next() {
			rc, err := s.Open(context.Background(), bucket, key, etag, chunk, chunk)
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
			rc.Close()
			if err != nil || n != chunk {
				b.Errorf("read %d, %v", n, err)
				return
			}
		}
	})
}

func BenchmarkDirOpenRead64K(b *testing.B) {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bkt"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bkt", "obj"), randBytes(1<<20, 9), 0o644); err != nil {
		b.Fatal(err)
	}
	d, err := NewDir(DirConfig{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	info, err := d.Stat(context.Background(), "bkt", "obj")
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, d, "bkt", "obj", info.ETag)
}

func BenchmarkS3OpenRead64K(b *testing.B) {
	srv := testenv.MinIO(b)
	bucket := srv.NewBucket(b)
	if _, err := srv.Client(b).PutObject(context.Background(), bucket, "obj",
		bytes.NewReader(randBytes(1<<20, 10)), 1<<20, minio.PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	s, err := NewS3(S3Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	info, err := s.Stat(context.Background(), bucket, "obj")
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, s, bucket, "obj", info.ETag)
}
