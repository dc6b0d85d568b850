package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/admin"
	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const adminKey16 = "edgectl-test-admin-key"

var realSeq atomic.Int64

// realEnv is the real admin API (admin.API with auth.Verifier and
// auth.Catalog on a real redis-server) on a loopback listener, plus the
// shared MinIO server.
type realEnv struct {
	addr     string
	verifier *auth.Verifier
	catalog  *auth.Catalog
	minio    *testenv.MinIOServer
	purger   *recordingPurger
}

// recordingPurger stands in for the cache behind POST /v1/purge.
type recordingPurger struct {
	mu    sync.Mutex
	calls []string
}

func (p *recordingPurger) Purge(bucket, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "key "+bucket+"/"+key)
	return 1
}

func (p *recordingPurger) PurgePrefix(bucket, prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "prefix "+bucket+"/"+prefix)
	return 7
}

func (p *recordingPurger) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func startReal(t *testing.T) *realEnv {
	t.Helper()
	r := testenv.Redis(t)
	rc := r.Client(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	// Keys unique to the test: the Redis server is shared by the binary.
	prefix := "edgectl-test:" + strconv.FormatInt(realSeq.Add(1), 10) + ":"
	// Generous budgets: the race detector on a busy machine is slow, and a
	// refusal for slowness would be a false failure here.
	v, err := auth.New(auth.Config{KeyPrefix: prefix + "token:", RevokeChannel: prefix + "revoked", Budget: 3 * time.Second}, rc, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	cat, err := auth.NewCatalog(auth.CatalogConfig{KeyPrefix: prefix + "file:", Timeout: 3 * time.Second}, rc, logger)
	if err != nil {
		t.Fatal(err)
	}
	env := &realEnv{verifier: v, catalog: cat, minio: testenv.MinIO(t), purger: &recordingPurger{}}
	a := admin.New(admin.Config{Key: adminKey16}, admin.Deps{Purger: env.purger, CacheStats: func() any { return map[string]int{"hits": 5} },
		Tokens: v, Catalog: cat, DownloadBase: "http://edge.example", Logger: logger})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	env.addr = srv.URL
	return env
}

// run runs edgectl against the real API and MinIO; extra overrides the
// environment (later entries win, as getenv takes the first match).
func (e *realEnv) run(t *testing.T, extra []string, args ...string) (int, string, string) {
	t.Helper()
	env := append(append([]string{}, extra...),
		"EDGECTL_ADDR="+e.addr, "EDGECTL_ADMIN_KEY="+adminKey16,
		"EDGECTL_S3_ENDPOINT="+e.minio.Endpoint,
		"EDGECTL_S3_ACCESS_KEY="+e.minio.AccessKey, "EDGECTL_S3_SECRET_KEY="+e.minio.SecretKey)
	var out, errb bytes.Buffer
	code := run(args, env, &out, &errb)
	return code, out.String(), errb.String()
}

var localhost = netip.MustParseAddr("127.0.0.1")

func TestRealTokenCreateRevoke(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	before := time.Now()
	code, out, errs := e.run(t, nil, "token", "create", "-file", "10086", "-user", "9527", "-ip", "127.0.0.0/8",
		"-max-uses", "1", "-rate", "1048576", "-ttl", "90m")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errs)
	}
	var created struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		URL       string `json:"url"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token == "" {
		t.Fatalf("stdout %q: %v", out, err)
	}
	exp, err := time.Parse(time.RFC3339, created.ExpiresAt)
	if err != nil || exp.Before(before.Add(90*time.Minute-time.Second)) || exp.After(time.Now().Add(90*time.Minute)) {
		t.Fatalf("expires_at %q (%v), want 90m from now", created.ExpiresAt, err)
	}
	if created.URL != "http://edge.example/download/10086?token="+created.Token {
		t.Fatalf("url %q", created.URL)
	}
	// The token is real: the verifier grants it, for that file and network only.
	g, err := e.verifier.Verify(ctx, created.Token, "10086", localhost)
	if err != nil || g.FileID != "10086" || g.UserID != "9527" || g.Rate != 1048576 {
		t.Fatalf("Verify = %+v, %v", g, err)
	}
	if _, err := e.verifier.Verify(ctx, created.Token, "10087", localhost); !errors.Is(err, auth.ErrTokenWrongFile) {
		t.Fatalf("other file: %v, want token_wrong_file", err)
	}
	if _, err := e.verifier.Verify(ctx, created.Token, "10086", netip.MustParseAddr("192.0.2.1")); !errors.Is(err, auth.ErrIPNotAllowed) {
		t.Fatalf("other address: %v, want ip_not_allowed", err)
	}

	if code, out, errs := e.run(t, nil, "token", "revoke", created.Token); code != 0 || out != "" {
		t.Fatalf("token revoke: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if _, err := e.verifier.Verify(ctx, created.Token, "10086", localhost); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("after revoke: %v, want token_invalid", err)
	}
	// Revoking again: the API's 404, and the token is not repeated.
	code, _, errs = e.run(t, nil, "token", "revoke", created.Token)
	if code != 1 || !strings.Contains(errs, "404") || !strings.Contains(errs, "token_not_found") || strings.Contains(errs, created.Token) {
		t.Fatalf("second revoke: exit %d, stderr %q", code, errs)
	}
	// The server's own validation comes back as exit 1 with its code.
	code, out, errs = e.run(t, nil, "token", "create", "-file", "1", "-ip", "not-an-ip")
	if code != 1 || out != "" || !strings.Contains(errs, "bad_request") {
		t.Fatalf("bad -ip: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestRealWrongAdminKey(t *testing.T) {
	e := startReal(t)
	bucket := e.minio.NewBucket(t)
	src := writeTemp(t, "a.bin", randomBytes(t, 1000))
	wrong := []string{"EDGECTL_ADMIN_KEY=not-the-admin-key-at-all"}
	for _, args := range [][]string{
		{"token", "create", "-file", "10086"},
		{"file", "put", "-id", "w1", "-bucket", bucket, "-src", src},
		{"file", "get", "w1"},
		{"purge", "-bucket", "dl", "-key", "k"},
		{"stats"},
	} {
		code, out, errs := e.run(t, wrong, args...)
		if code != 1 || out != "" || !strings.Contains(errs, "401") || !strings.Contains(errs, "admin_unauthorized") {
			t.Errorf("edgectl %v with a wrong key: exit %d, stdout %q, stderr %q; want 1, nothing, admin_unauthorized", args, code, out, errs)
		}
	}
	// file put checked the key before uploading: nothing reached the bucket.
	if _, err := e.minio.Client(t).StatObject(context.Background(), bucket, "a.bin", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Fatalf("StatObject after a refused file put: %v, want NoSuchKey", err)
	}
	if calls := e.purger.list(); calls != nil {
		t.Fatalf("purge ran with a wrong key: %v", calls)
	}
}

func TestRealFilePut(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	bucket := e.minio.NewBucket(t)
	mc := e.minio.Client(t)
	for _, tc := range []struct {
		name string
		file string // local file name
		size int
		args []string
		key  string
	}{
		// 17 MiB is above minio-go's 16 MiB part size: a multipart upload.
		{"multipart", "upload.bin", 17<<20 + 123, []string{"-key", "iso/big file.iso", "-filename", "Big File.iso", "-content-type", "application/x-iso9660-image"}, "iso/big file.iso"},
		{"single put, defaults", "small.txt", 100_003, nil, "small.txt"},
		{"empty", "upload.bin", 0, []string{"-key", "empty/zero.bin"}, "empty/zero.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(t, tc.size)
			src := writeTemp(t, tc.file, data)
			sum := sha256.Sum256(data)
			wantSum := hex.EncodeToString(sum[:])
			id := "f-" + strings.ReplaceAll(tc.name, " ", "-")
			code, out, errs := e.run(t, nil, append([]string{"file", "put", "-id", id, "-bucket", bucket, "-src", src}, tc.args...)...)
			if code != 0 {
				t.Fatalf("file put: exit %d: %s", code, errs)
			}
			// The object holds the same bytes.
			obj, err := mc.GetObject(ctx, bucket, tc.key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("object %s: %d bytes (%v), want the file's %d", tc.key, len(got), err, len(data))
			}
			st, err := mc.StatObject(ctx, bucket, tc.key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "multipart" && !strings.Contains(st.ETag, "-") {
				t.Fatalf("ETag %q: want a multipart upload's", st.ETag)
			}
			// The catalog has the file's real SHA-256 and size.
			m, err := e.catalog.Lookup(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if m.SHA256 != wantSum || m.Size != int64(tc.size) || m.Bucket != bucket || m.Key != tc.key {
				t.Fatalf("catalog %+v, want sha256 %s size %d key %q", m, wantSum, tc.size, tc.key)
			}
			if m.ContentType != st.ContentType || m.ContentType == "" {
				t.Fatalf("content type: catalog %q, object %q", m.ContentType, st.ContentType)
			}
			switch tc.name {
			case "multipart":
				if m.Filename != "Big File.iso" || m.ContentType != "application/x-iso9660-image" {
					t.Fatalf("catalog %+v: flags not applied", m)
				}
			case "single put, defaults":
				if m.Filename != "small.txt" || !strings.HasPrefix(m.ContentType, "text/plain") {
					t.Fatalf("catalog %+v: want filename small.txt and text/plain from the extension", m)
				}
			}
			var printed map[string]any
			if err := json.Unmarshal([]byte(out), &printed); err != nil || printed["sha256"] != wantSum || printed["size"] != float64(tc.size) {
				t.Fatalf("stdout %q (%v)", out, err)
			}
			// file get reads it back through the API.
			code, out, errs = e.run(t, nil, "file", "get", id)
			var rec map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &rec) != nil || rec["sha256"] != wantSum || rec["key"] != tc.key || rec["id"] != id {
				t.Fatalf("file get: exit %d, stdout %q, stderr %s", code, out, errs)
			}
		})
	}
}

func TestRealFilePutMetadataAndGet(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	sum := strings.Repeat("0f", 32)
	code, _, errs := e.run(t, nil, "file", "put", "-id", "m1", "-bucket", "dl", "-key", "iso/a.iso", "-size", "42", "-sha256", sum)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m, err := e.catalog.Lookup(ctx, "m1")
	if err != nil || m.Bucket != "dl" || m.Key != "iso/a.iso" || m.Size != 42 || m.SHA256 != sum {
		t.Fatalf("catalog %+v, %v", m, err)
	}
	code, out, errs := e.run(t, nil, "file", "get", "nope")
	if code != 1 || out != "" || !strings.Contains(errs, "not_found") {
		t.Fatalf("file get nope: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// Failed uploads register nothing.
func TestRealFilePutUploadFails(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	src := writeTemp(t, "a.bin", randomBytes(t, 5000))
	for _, tc := range []struct {
		name  string
		extra []string
		args  []string
	}{
		{"no such bucket", nil, []string{"-id", "u1", "-bucket", "no-such-bucket-edgectl", "-src", src}},
		{"wrong secret", []string{"EDGECTL_S3_SECRET_KEY=wrong-secret-key"}, []string{"-id", "u2", "-bucket", e.minio.NewBucket(t), "-src", src}},
		{"missing file", nil, []string{"-id", "u3", "-bucket", e.minio.NewBucket(t), "-src", filepath.Join(t.TempDir(), "missing")}},
		{"directory", nil, []string{"-id", "u4", "-bucket", e.minio.NewBucket(t), "-src", t.TempDir(), "-key", "d"}},
	} {
		code, out, errs := e.run(t, tc.extra, append([]string{"file", "put"}, tc.args...)...)
		if code != 1 || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1", tc.name, code, out, errs)
		}
		if strings.Contains(errs, e.minio.SecretKey) || strings.Contains(errs, "wrong-secret-key") {
			t.Errorf("%s: stderr shows the secret: %q", tc.name, errs)
		}
		id := tc.args[1]
		if _, err := e.catalog.Lookup(ctx, id); !errors.Is(err, auth.ErrFileNotFound) {
			t.Errorf("%s: catalog lookup %s: %v, want not found", tc.name, id, err)
		}
	}
}

// When registration fails after the upload, the error says how to
// register the uploaded object without uploading it again.
func TestFilePutRegisterFailsAfterUpload(t *testing.T) {
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	var puts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // the preflight: no such file yet
			writeJSONError(w, http.StatusNotFound, "not_found", "no such file")
			return
		}
		puts.Add(1)
		writeJSONError(w, http.StatusServiceUnavailable, "store_unavailable", "the token store could not be reached")
	}))
	t.Cleanup(srv.Close)
	data := randomBytes(t, 777)
	sum := sha256.Sum256(data)
	src := writeTemp(t, "r.bin", data)
	var out, errb bytes.Buffer
	code := run([]string{"file", "put", "-id", "r1", "-bucket", bucket, "-src", src, "-key", "dir/it's.bin"},
		[]string{"EDGECTL_ADDR=" + srv.URL, "EDGECTL_ADMIN_KEY=k", "EDGECTL_S3_ENDPOINT=http://" + m.Endpoint,
			"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey}, &out, &errb)
	errs := errb.String()
	if code != 1 || out.Len() != 0 || puts.Load() != 1 {
		t.Fatalf("exit %d, stdout %q, %d PUTs; stderr %s", code, out.String(), puts.Load(), errs)
	}
	want := "edgectl file put -id r1 -bucket " + bucket + ` -key 'dir/it'\''s.bin' -size 777 -sha256 ` + hex.EncodeToString(sum[:])
	if !strings.Contains(errs, want) || !strings.Contains(errs, "store_unavailable") {
		t.Fatalf("stderr %q\nwant it to contain %q and the API's code", errs, want)
	}
	if _, err := m.Client(t).StatObject(context.Background(), bucket, "dir/it's.bin", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the object should be uploaded: %v", err)
	}
}

func TestRealPurgeStats(t *testing.T) {
	e := startReal(t)
	if code, out, errs := e.run(t, nil, "purge", "-bucket", "dl", "-prefix", "iso/"); code != 0 || strings.TrimSpace(out) != `{"purged":7}` {
		t.Fatalf("purge: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if code, out, errs := e.run(t, nil, "stats"); code != 0 || strings.TrimSpace(out) != `{"hits":5}` {
		t.Fatalf("stats: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if calls := e.purger.list(); len(calls) != 1 || calls[0] != "prefix dl/iso/" {
		t.Fatalf("purger calls %v", calls)
	}
}

// Invalid command lines exit 2 and change nothing.
func TestRealBadFlags(t *testing.T) {
	e := startReal(t)
	ctx := context.Background()
	bucket := e.minio.NewBucket(t)
	src := writeTemp(t, "b.bin", randomBytes(t, 10))
	for _, args := range [][]string{
		{"token", "create", "-file", "b1", "-ttl", "soon"},
		{"token", "create", "-file", "b1", "-max-uses", "-3"},
		{"file", "put", "-id", "b1", "-bucket", bucket, "-src", src, "-key", "a/../b"},
		{"file", "put", "-id", "b1", "-bucket", bucket, "-src", src, "-sha256", strings.Repeat("0", 64)},
		{"file", "put", "-id", "b1", "-src", src},
		{"file", "put", "-id", "b1", "-bucket", bucket, "-src", src, "-s3-endpoint", "ftp://x"},
		{"file", "get"},
		{"purge", "-bucket", "dl"},
	} {
		code, out, errs := e.run(t, nil, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: edgectl") {
			t.Errorf("edgectl %v: exit %d, stdout %q, stderr %q; want 2 with usage", args, code, out, errs)
		}
	}
	if _, err := e.catalog.Lookup(ctx, "b1"); !errors.Is(err, auth.ErrFileNotFound) {
		t.Fatalf("catalog has b1 after invalid commands: %v", err)
	}
	if n := len(e.purger.list()); n != 0 {
		t.Fatalf("purger called %d times", n)
	}
	objs := e.minio.Client(t).ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for o := range objs {
		t.Fatalf("bucket holds %q (%v) after invalid commands", o.Key, o.Err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// onePass is a reader that can be read once, front to back: it has no
// Seek or ReadAt, and counts reads after EOF so the test sees any attempt
// to go over the data again.
type onePass struct {
	data    []byte
	off     int
	pastEOF int
}

func (p *onePass) Read(b []byte) (int, error) {
	if p.off == len(p.data) {
		p.pastEOF++
		return 0, io.EOF
	}
	n := copy(b, p.data[p.off:])
	p.off += n
	return n, nil
}

// The hash comes from the single stream that is sent, even when minio-go
// splits it into parts: the SHA-256 is that of the data, with no second
// pass over the source.
func TestPutHashedOnePass(t *testing.T) {
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	mc := m.Client(t)
	data := randomBytes(t, 16<<20+4097) // just over one part
	src := &onePass{data: data}
	sum, n, err := putHashed(context.Background(), mc, src, int64(len(data)), bucket, "one/pass.bin", "application/octet-stream")
	want := sha256.Sum256(data)
	if err != nil || sum != hex.EncodeToString(want[:]) || n != int64(len(data)) {
		t.Fatalf("putHashed = %s, %d, %v; want %x, %d", sum, n, err, want, len(data))
	}
	if src.off != len(data) || src.pastEOF > 2 {
		t.Fatalf("source read to %d of %d, %d reads past EOF", src.off, len(data), src.pastEOF)
	}
	obj, err := mc.GetObject(context.Background(), bucket, "one/pass.bin", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("stored object differs (%v)", err)
	}
	// A source shorter than announced fails instead of registering a hash
	// of less than the object.
	short := &onePass{data: data[:1000]}
	if _, _, err := putHashed(context.Background(), mc, short, 2000, bucket, "one/short.bin", ""); err == nil {
		t.Fatal("putHashed of a short source succeeded")
	}
}

// writeJSONError answers as the admin API does: a JSON body with a code.
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": message})
}
