package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestUploadGrantsThroughBinary: the real binary hands auth.signer to the
// upload endpoint and the upload token writer to the admin API: an upload
// token from edgectl token create -upload and a URL from edgectl sign
// -upload each create and complete an upload; a tampered signed URL is
// refused.
func TestUploadGrantsThroughBinary(t *testing.T) {
	m := testenv.MinIO(t)
	r := testenv.Redis(t)
	bucket := m.NewBucket(t)
	const adminKey, secret = "wiring-admin-key-0123", "0123456789abcdef0123456789abcdef"
	cfg := filepath.Join(t.TempDir(), "edgeproxy.yaml")
	if err := os.WriteFile(cfg, []byte("auth:\n  signer:\n    keys: {k1: "+secret+"}\n    active_key: k1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("wire%d:", time.Now().UnixNano())
	p := start(t, []string{"-config", cfg}, []string{
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=" + bucket,
		"EDGEPROXY_PROXY_ACCESS_LOG=false",
		"EDGEPROXY_ORIGIN_KIND=s3",
		"EDGEPROXY_ORIGIN_S3_ENDPOINT=" + m.Endpoint,
		"EDGEPROXY_ORIGIN_S3_ACCESS_KEY=" + m.AccessKey,
		"EDGEPROXY_ORIGIN_S3_SECRET_KEY=" + m.SecretKey,
		"EDGEPROXY_REDIS_ADDRS=" + r.Addr,
		"EDGEPROXY_UPLOAD_ENABLED=true",
		"EDGEPROXY_UPLOAD_BUCKETS=" + bucket,
		"EDGEPROXY_UPLOAD_KEY_PREFIX=" + prefix + "upload:",
		"EDGEPROXY_UPLOAD_TEMP_DIR=" + t.TempDir(),
		"EDGEPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"EDGEPROXY_ADMIN_KEY=" + adminKey,
	})
	admin, _ := p.adminAddr.Load().(string)
	if admin == "" {
		t.Fatalf("no admin address logged:\n%s", p.stderr.String())
	}
	tus := func(method, url, token string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/offset+octet-stream")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	base := "http://" + p.addr

	out := runEdgectl(t, []string{"EDGECTL_ADDR=http://" + admin, "EDGECTL_ADMIN_KEY=" + adminKey},
		"token", "create", "-upload", "-bucket", bucket, "-key", "tok.bin", "-max-size", "100", "-ttl", "5m")
	var tok struct{ Token, Endpoint string }
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" || !strings.HasSuffix(tok.Endpoint, "/uploads/") {
		t.Fatalf("token create -upload printed %s (%v)", out, err)
	}
	resp := tus("POST", base+"/uploads/", tok.Token, nil, "Upload-Length", "10")
	if resp.StatusCode != 201 {
		t.Fatalf("create with the admin's upload token: %d", resp.StatusCode)
	}
	if resp := tus("PATCH", base+resp.Header.Get("Location"), tok.Token, []byte("0123456789"), "Upload-Offset", "0"); resp.StatusCode != 204 {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}

	signed := strings.TrimSpace(string(runEdgectl(t, []string{"EDGECTL_SIGN_KEYS=k1:" + secret},
		"sign", "-upload", "-url", base+"/uploads/", "-bucket", bucket, "-prefix", "s/", "-max-size", "100", "-ttl", "5m")))
	if resp := tus("POST", strings.Replace(signed, "max_size=100", "max_size=101", 1), "", nil, "Upload-Length", "5"); resp.StatusCode != 403 {
		t.Fatalf("tampered signed URL: %d, want 403", resp.StatusCode)
	}
	resp = tus("POST", signed, "", nil, "Upload-Length", "5")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 201 || !strings.Contains(loc, "?token=") {
		t.Fatalf("create with the signed URL: %d, Location %q", resp.StatusCode, loc)
	}
	if resp := tus("PATCH", base+loc, "", []byte("abcde"), "Upload-Offset", "0"); resp.StatusCode != 204 {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}

	// A reload that rotates the keys applies to upload URLs too: the old
	// key's URLs are refused, the new key's accepted.
	const secret2 = "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(cfg, []byte("auth:\n  signer:\n    keys: {k2: "+secret2+"}\n    active_key: k2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the reload to be applied", func() bool {
		return strings.Contains(p.stderr.String(), "reload: configuration applied")
	})
	if resp := tus("POST", signed, "", nil, "Upload-Length", "5"); resp.StatusCode != 403 {
		t.Fatalf("URL signed with the removed key: %d, want 403", resp.StatusCode)
	}
	signed2 := strings.TrimSpace(string(runEdgectl(t, []string{"EDGECTL_SIGN_KEYS=k2:" + secret2},
		"sign", "-upload", "-url", base+"/uploads/", "-bucket", bucket, "-key", "k2.bin", "-ttl", "5m")))
	if resp := tus("POST", signed2, "", nil, "Upload-Length", "5"); resp.StatusCode != 201 {
		t.Fatalf("URL signed with the new key: %d, want 201", resp.StatusCode)
	}
	// The upload created before the reload still resumes: its credential
	// is in its state, not in the keys.
	if resp := tus("HEAD", base+loc, "", nil); resp.StatusCode != 200 {
		t.Fatalf("HEAD of the earlier upload after the reload: %d", resp.StatusCode)
	}
}
