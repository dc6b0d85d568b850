package upload

import (
	"bytes"
	"context"
	"hash/crc32"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestPartOptions: a part goes out unsigned, with the CRC32C it is given
// in base64 of its big-endian bytes (the standard check value of
// "123456789").
func TestPartOptions(t *testing.T) {
	opts := partOptions(crc32.Checksum([]byte("123456789"), castagnoli))
	if !opts.DisableContentSha256 {
		t.Error("payload signing left on")
	}
	if got := opts.CustomHeader.Get("X-Amz-Checksum-Crc32c"); got != "4waSgw==" { // 0xe3069283
		t.Errorf("crc32c header %q, want 4waSgw==", got)
	}
}

// TestPartChecksumChecked: the store refuses a part whose bytes do not
// match the CRC32C sent with it, so an unsigned part is still checked
// end to end, and accepts the same part with its own bytes.
func TestPartChecksumChecked(t *testing.T) {
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	core := minio.Core{Client: m.Client(t)}
	ctx := context.Background()
	id, err := core.NewMultipartUpload(ctx, bucket, "crc", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer core.AbortMultipartUpload(ctx, bucket, "crc", id)
	good := bytes.Repeat([]byte("edgeproxy"), 1000)
	bad := bytes.Clone(good)
	bad[500] ^= 1
	opts := partOptions(crc32.Checksum(good, castagnoli))
	if _, err := core.PutObjectPart(ctx, bucket, "crc", id, 1, bytes.NewReader(bad), int64(len(bad)), opts); err == nil {
		t.Fatal("a damaged part was accepted")
	}
	if _, err := core.PutObjectPart(ctx, bucket, "crc", id, 1, bytes.NewReader(good), int64(len(good)), opts); err != nil {
		t.Fatalf("the intact part: %v", err)
	}
}
