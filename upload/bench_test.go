package upload_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/upload"
)

// BenchmarkUploadVsDirect answers the throughput question: one
// 256 MiB file through the edge (one streamed tus PATCH) beside the same
// file uploaded straight to MinIO with minio-go's PutObject (its own
// parallel multipart upload), side by side in one run. Compare the two
// MB/s figures; the edge should reach at least 0.8x of direct. Run it on a
// quiet machine: go test -run X -bench UploadVsDirect -benchtime 3x ./upload
func BenchmarkUploadVsDirect(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b)
	n := e.node(e.config())
	b.Run("edge", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			tok := e.token(n.Uploads, upload.Grant{Key: fmt.Sprintf("bench/edge-%d", i)})
			url := n.URL + create(b, n, tok, size)
			resp, body := tusReq(b, "PATCH", url, tok, newGen(size), "Upload-Offset", "0", "Content-Length", fmt.Sprint(size))
			if resp.StatusCode != 204 {
				b.Fatalf("PATCH: %d %s", resp.StatusCode, body)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; b.Loop(); i++ {
			_, err := e.core.Client.PutObject(context.Background(), e.bucket, fmt.Sprintf("bench/direct-%d", i), newGen(size), size, minio.PutObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
