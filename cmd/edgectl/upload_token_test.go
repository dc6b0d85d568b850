package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/admin"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/upload"
)

// TestTokenCreateUploadBody: -upload sends the upload grant to
// /v1/upload-tokens; download-only flags are refused with it, and its
// flags without it.
func TestTokenCreateUploadBody(t *testing.T) {
	api := &fakeAPI{status: 201, answer: `{"token":"abcdefghijklmnop","expires_at":"2026-01-01T00:00:00Z","endpoint":"http://e/uploads/"}`}
	addr := api.start(t)
	code, out, errs := runCmd(t, addr, "token", "create", "-upload", "-bucket", "up", "-prefix", "in/", "-file", "f1", "-max-size", "1048576", "-ttl", "2h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if api.path != "/v1/upload-tokens" || api.body["bucket"] != "up" || api.body["prefix"] != "in/" || api.body["file_id"] != "f1" ||
		api.body["max_size"] != float64(1<<20) || api.body["ttl"] != "2h0m0s" || api.body["key"] != nil {
		t.Fatalf("POST %s %v", api.path, api.body)
	}
	if !strings.Contains(out, `"endpoint":"http://e/uploads/"`) {
		t.Fatalf("stdout %q", out)
	}
	for _, args := range [][]string{
		{"-upload", "-prefix", "in/"},
		{"-upload", "-bucket", "up"},
		{"-upload", "-bucket", "up", "-key", "a", "-prefix", "in/"},
		{"-upload", "-bucket", "up", "-key", "a", "-max-uses", "1"},
		{"-upload", "-bucket", "up", "-key", "a", "-max-size", "-1"},
		{"-file", "10086", "-key", "a"},
	} {
		if code, out, _ := runCmd(t, addr, append([]string{"token", "create"}, args...)...); code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2", args, code, out)
		}
	}
}

// TestRealTokenCreateUpload: edgectl token create -upload against the real
// admin API over a real upload endpoint (Redis, MinIO): the token it
// prints creates an upload within its grant, is refused beyond it, and the
// API refuses a bucket the endpoint does not take.
func TestRealTokenCreateUpload(t *testing.T) {
	m := testenv.MinIO(t)
	r := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	core, err := minio.NewCore(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := m.NewBucket(t)
	prefix := fmt.Sprintf("edgectl-uptok:%d:", realSeq.Add(1))
	u, err := upload.New(upload.Config{Enabled: true, TempDir: t.TempDir(), KeyPrefix: prefix, Buckets: []string{bucket},
		PurgeChannel: prefix + "purge", JanitorInterval: -1}, upload.Deps{Redis: rdb, S3: coreStore{core}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := httptest.NewServer(admin.New(admin.Config{Key: adminKey16}, admin.Deps{UploadTokens: u, DownloadBase: "http://edge.example", Logger: logger}))
	t.Cleanup(api.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { u.ServeUpload(ctx, netip.MustParseAddr("127.0.0.1")) }, StreamRequestBody: true}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	tus := "http://" + ln.Addr().String() + "/uploads/"

	env := []string{"EDGECTL_ADDR=" + api.URL, "EDGECTL_ADMIN_KEY=" + adminKey16}
	runE := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		code := run(args, env, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := runE("token", "create", "-upload", "-bucket", bucket, "-prefix", "in/", "-max-size", "1000", "-ttl", "10m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct{ Token, ExpiresAt, Endpoint string }
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Token == "" || got.Endpoint != "http://edge.example/uploads/" {
		t.Fatalf("stdout %q: %v", out, err)
	}
	post := func(tok string, length int) *http.Response {
		req, _ := http.NewRequest("POST", tus, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", fmt.Sprint(length))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(got.Token, 1001); resp.StatusCode != 413 {
		t.Fatalf("beyond max-size: %d, want 413", resp.StatusCode)
	}
	resp := post(got.Token, 1000)
	if resp.StatusCode != 201 {
		t.Fatalf("create with the token: %d, want 201", resp.StatusCode)
	}
	req, _ := http.NewRequest("DELETE", tus[:len(tus)-len("/uploads/")]+resp.Header.Get("Location"), nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+got.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if code, out, errs := runE("token", "create", "-upload", "-bucket", "not-"+bucket, "-key", "a.bin"); code != 1 || out != "" || !strings.Contains(errs, "bad_request") {
		t.Fatalf("other bucket: exit %d, stdout %q, stderr %q; want 1 bad_request", code, out, errs)
	}
	if code, _, errs := runE("token", "create", "-upload", "-bucket", bucket, "-key", "../a.bin"); code != 1 || !strings.Contains(errs, "bad_request") {
		t.Fatalf("bad key: exit %d, stderr %q; want 1 bad_request", code, errs)
	}
	mu, err := core.ListMultipartUploads(t.Context(), bucket, "", "", "", "", 100)
	if err != nil || len(mu.Uploads) != 0 {
		t.Fatalf("multipart uploads left: %v %v", mu.Uploads, err)
	}
}

// coreStore is the upload.Store of a plain minio-go client.
type coreStore struct{ c *minio.Core }

func (s coreStore) Core() *minio.Core { return s.c }

// Do runs op once: a single local MinIO has no node to fail over to.
func (s coreStore) Do(_ context.Context, op func(*minio.Core) error) error { return op(s.c) }
