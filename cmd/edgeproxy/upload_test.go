package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestUploadsThroughBinaryBoundedRSS: the real binary with upload.enabled
// (the wiring, the token format the README documents) takes 20 concurrent
// 32 MiB tus uploads, each one streamed PATCH, with its RSS growing far
// less than the 640 MiB it carries, and serves each file at once, exact.
func TestUploadsThroughBinaryBoundedRSS(t *testing.T) {
	const uploads, size = 20, 32 << 20
	m := testenv.MinIO(t)
	r := testenv.Redis(t)
	bucket := m.NewBucket(t)
	rdb := r.Client(t)
	prefix := fmt.Sprintf("bin%d:", time.Now().UnixNano())
	p := start(t, []string{"-config", "../../config.yaml"}, []string{
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=" + bucket,
		"EDGEPROXY_PROXY_ACCESS_LOG=false",
		"EDGEPROXY_ORIGIN_S3_ENDPOINT=" + m.Endpoint,
		"EDGEPROXY_ORIGIN_S3_ACCESS_KEY=" + m.AccessKey,
		"EDGEPROXY_ORIGIN_S3_SECRET_KEY=" + m.SecretKey,
		"EDGEPROXY_REDIS_ADDRS=" + r.Addr,
		"EDGEPROXY_AUTH_CATALOG_ENABLED=true",
		"EDGEPROXY_AUTH_CATALOG_KEY_PREFIX=" + prefix + "file:meta:",
		"EDGEPROXY_UPLOAD_ENABLED=true",
		"EDGEPROXY_UPLOAD_BUCKETS=" + bucket,
		"EDGEPROXY_UPLOAD_KEY_PREFIX=" + prefix + "upload:",
		"EDGEPROXY_UPLOAD_TEMP_DIR=" + t.TempDir(),
	})
	body := make([]byte, size)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i+8 <= size; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			body[i+j] = byte(v >> (8 * j))
		}
	}
	h := sha256.Sum256(body)
	sum := hex.EncodeToString(h[:])
	base := vmHWM(t, p.cmd.Process.Pid)

	client := &http.Client{Timeout: 5 * time.Minute}
	do := func(method, url, tok string, rd io.Reader, hdr ...string) (*http.Response, string) {
		req, _ := http.NewRequest(method, url, rd)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := fmt.Sprintf("%stok%d", strings.TrimSuffix(prefix, ":"), i)
			rdb.HSet(t.Context(), prefix+"upload:token:"+tok, "bucket", bucket, "key", fmt.Sprintf("u/%d", i), "file_id", fmt.Sprintf("up-%d", i))
			rdb.Expire(t.Context(), prefix+"upload:token:"+tok, time.Hour)
			resp, b := do("POST", "http://"+p.addr+"/uploads/", tok, nil, "Upload-Length", fmt.Sprint(size),
				"Upload-Metadata", "sha256 "+base64.StdEncoding.EncodeToString([]byte(sum)))
			if resp == nil || resp.StatusCode != 201 {
				t.Errorf("upload %d: create: %v %s", i, resp, b)
				return
			}
			resp, b = do("PATCH", "http://"+p.addr+resp.Header.Get("Location"), tok, bytes.NewReader(body),
				"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
			if resp == nil || resp.StatusCode != 204 {
				t.Errorf("upload %d: patch: %v %s", i, resp, b)
			}
		}()
	}
	wg.Wait()
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("edgeproxy peak RSS: %d MiB before, %d MiB after %d concurrent %d MiB uploads (+%d MiB)",
		base>>20, peak>>20, uploads, size>>20, (peak-base)>>20)
	if peak-base > 100<<20 {
		t.Errorf("RSS grew by %d MiB, want at most 100 MiB", (peak-base)>>20)
	}
	for i := range uploads {
		resp, err := http.Get(fmt.Sprintf("http://%s/download/up-%d", p.addr, i))
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.New()
		io.Copy(got, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || hex.EncodeToString(got.Sum(nil)) != sum {
			t.Fatalf("download up-%d: %d", i, resp.StatusCode)
		}
	}
}
