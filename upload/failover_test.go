package upload_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/upload"
)

// TestTusFirstNodeKilled: the edge's origin is a 4-node distributed MinIO
// and the first listed node is killed (SIGKILL) while a PATCH streams a
// 24 MiB file. The client resumes through tus on the same edge (HEAD, then
// PATCH from the offset) until the upload completes; the file in the
// store, read from another node, has the exact SHA-256. Every S3 call of
// the upload endpoint goes to a node the pool holds up at that moment.
func TestTusFirstNodeKilled(t *testing.T) {
	cluster := testenv.NewMinIOCluster(t)
	r := testenv.Redis(t)
	rdb := r.Client(t)
	core, err := minio.NewCore(cluster.Endpoints[1], &minio.Options{Creds: credentials.NewStaticV4(cluster.AccessKey, cluster.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bucket := "tus-failover"
	// minio-go retries a MakeBucket whose answer came late; the retry
	// finds the bucket made.
	if err := core.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		t.Fatal(err)
	}
	e := &env{t: t, core: core, rdb: rdb, bucket: bucket, prefix: fmt.Sprintf("t-%s:", t.Name()),
		clock: fakeclock.At(time.Now()), purged: &purgeLog{},
		origin: origin.S3Config{Endpoints: cluster.Endpoints, AccessKey: cluster.AccessKey, SecretKey: cluster.SecretKey,
			HealthInterval: 200 * time.Millisecond}}
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "in/"})
	data := randBytes(14, 24<<20)
	loc := create(t, n, tok, int64(len(data)), "Upload-Metadata", meta("filename", "x.bin", "sha256", shaHex(data)))

	// The first PATCH sends 8 MiB (a part, on some node), then the first
	// node dies, then the PATCH goes on with the rest.
	pr, pw := io.Pipe()
	half := 8 << 20
	killed := make(chan bool, 1) // true: after a part reached the store
	go func() {
		pw.Write(data[:half])
		if !testenv.Poll(ctx, time.Minute, func() bool { return e.partsInStore(ctx) > 0 }) {
			killed <- false
			pw.CloseWithError(fmt.Errorf("no part in the store after a minute"))
			return
		}
		cluster.Kill(t, 0)
		killed <- true
		pw.Write(data[half:])
		pw.Close()
	}()
	req, err := http.NewRequest("PATCH", n.URL+loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	if resp, err := httpClient.Do(req); err != nil {
		t.Logf("first PATCH: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("first PATCH: %d %s", resp.StatusCode, body)
	}
	if !<-killed {
		t.Fatal("no part reached the store before the kill")
	}

	// Resume on the same edge until the upload is whole.
	// Bounded by time, not by a count: on a loaded machine the surviving
	// nodes may refuse writes (SlowDownWrite, answered 502) for seconds
	// until MinIO has marked the dead node's drive offline; and a write
	// lock the dead node held on the upload (a part in flight when it was
	// killed) stays on the survivors' lockers until their maintenance drops
	// it: lockValidityDuration plus lockMaintenanceInterval in MinIO's
	// cmd/lock-rest-server.go, one minute each, so up to two minutes of
	// 502s before the first part goes through (seen once in CI).
	resumes := 0
	deadline := time.Now().Add(4 * time.Minute)
	for off := offsetOrZero(n.URL+loc, tok); off < int64(len(data)); off = offsetOrZero(n.URL+loc, tok) {
		if resumes++; time.Now().After(deadline) {
			t.Fatalf("upload stuck at offset %d of %d after %d resumes in 4 minutes", off, len(data), resumes)
		}
		if status, err := patchTry(n.URL+loc, tok, off, data[off:]); status != http.StatusNoContent {
			// A refusal may come while the body is still being sent.
			t.Logf("resume from %d: %d %v", off, status, err)
			time.Sleep(200 * time.Millisecond) // let the health checks see the dead node
		}
	}
	t.Logf("completed after %d resumes", resumes)

	obj, err := core.Client.GetObject(ctx, bucket, "in/x.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if shaHex(got) != shaHex(data) {
		t.Fatalf("stored object: %d bytes, sha256 %s, want %d bytes %s", len(got), shaHex(got), len(data), shaHex(data))
	}
	id := loc[len("/uploads/"):]
	wantDownload(t, n, id, data)
}

// patchTry sends a PATCH and returns its status and body, or the error
// of a request cut off.
func patchTry(url, token string, off int64, data []byte) (int, error) {
	req, err := http.NewRequest("PATCH", url, bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", fmt.Sprint(off))
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, fmt.Errorf("%s", body)
}

// offsetOrZero is the upload's offset by HEAD, 0 when HEAD fails.
func offsetOrZero(url, token string) int64 {
	req, _ := http.NewRequest("HEAD", url, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	var n int64
	fmt.Sscan(resp.Header.Get("Upload-Offset"), &n)
	return n
}

// partsInStore counts the parts of the bucket's unfinished multipart
// uploads (asked of node 1, which stays up).
func (e *env) partsInStore(ctx context.Context) int {
	r, err := e.core.ListMultipartUploads(ctx, e.bucket, "in/x.bin", "", "", "", 10)
	if err != nil || len(r.Uploads) == 0 {
		return 0
	}
	p, err := e.core.ListObjectParts(ctx, e.bucket, r.Uploads[0].Key, r.Uploads[0].UploadID, 0, 100)
	if err != nil {
		return 0
	}
	return len(p.ObjectParts)
}
