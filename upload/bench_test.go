package upload_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/upload"
)

// BenchmarkUploadVsDirect answers the throughput question (the
// edge must reach at least 0.8x a direct minio-go upload of the same
// file): each iteration uploads one 256 MiB generated file through the
// edge (one streamed tus PATCH, the production part size) and then the
// same bytes straight to MinIO with minio-go's PutObject, and reports
// both rates and their ratio, edge/direct. Alternating within one
// iteration keeps the ratio fair on a machine whose load changes from
// second to second; read the ratio, not the rates.
//
// The direct side is minio-go v7's PutObject as a client would call it
// with a reader that is neither seekable nor an io.ReaderAt and a known
// size: putObjectMultipartStreamOptionalChecksum, 16 MiB parts read whole
// into one buffer, then sent, one part at a time (reading and sending do
// not overlap), each signed with the streaming SigV4 payload signature
// over plain HTTP (a SHA-256 per 64 KiB chunk, checked again by MinIO).
//
//	go test -run '^$' -bench UploadVsDirect -benchtime 4x ./upload
func BenchmarkUploadVsDirect(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b)
	cfg := e.config()
	cfg.PartSize = 0 // the production default, not the tests' 5 MiB
	n := e.node(cfg)
	var edge, direct time.Duration
	b.SetBytes(2 * size)
	for i := 0; b.Loop(); i++ {
		tok := e.token(n.Uploads, upload.Grant{Key: fmt.Sprintf("bench/edge-%d", i)})
		url := n.URL + create(b, n, tok, size)
		start := time.Now()
		resp, body := tusReq(b, "PATCH", url, tok, newGen(size), "Upload-Offset", "0", "Content-Length", fmt.Sprint(size))
		edge += time.Since(start)
		if resp.StatusCode != 204 {
			b.Fatalf("PATCH: %d %s", resp.StatusCode, body)
		}
		start = time.Now()
		_, err := e.core.Client.PutObject(context.Background(), e.bucket, fmt.Sprintf("bench/direct-%d", i), newGen(size), size, minio.PutObjectOptions{})
		direct += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * size / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(edge), "edge-MB/s")
	b.ReportMetric(mbps(direct), "direct-MB/s")
	b.ReportMetric(direct.Seconds()/edge.Seconds(), "edge/direct")
}
