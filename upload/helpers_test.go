package upload_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
	"github.com/edgeproxy/edgeproxy/upload"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's share of the real servers: a bucket, a Redis key
// space, and the clock every node of the test uses.
type env struct {
	t      testing.TB
	origin origin.S3Config // the nodes' origin
	core   *minio.Core
	rdb    *redis.Client
	bucket string
	prefix string           // Redis key prefix of this test
	clock  *fakeclock.Clock // the nodes' clock: expiry is tested by moving it
	purged *purgeLog
	// readTimeout, when set, is the nodes' proxy.read_timeout.
	readTimeout time.Duration
}

// envSeq makes each env's Redis key space its own, also across -count runs
// of one test in one process (they share the Redis server).
var envSeq atomic.Int64

func newEnv(t testing.TB) *env {
	t.Helper()
	m := testenv.MinIO(t)
	r := testenv.Redis(t)
	rdb := r.Client(t)
	core, err := minio.NewCore(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return &env{t: t, origin: origin.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey}, core: core, rdb: rdb, bucket: m.NewBucket(t),
		prefix: fmt.Sprintf("t%d-%s-%d:", os.Getpid(), name, envSeq.Add(1)), clock: fakeclock.At(time.Now()), purged: &purgeLog{}}
}

// config is the upload configuration of the test's nodes: 5 MiB parts,
// so that small files still span several.
func (e *env) config() upload.Config {
	return upload.Config{Enabled: true, PartSize: 5 << 20, MaxSize: 2 << 30, TempDir: e.t.TempDir(),
		KeyPrefix: e.prefix + "upload:", Buckets: []string{e.bucket}, PurgeChannel: e.prefix + "purge",
		JanitorInterval: -1, Expiry: time.Hour}
}

// node is one edge node: a proxy serving downloads from the bucket (by
// catalog id) with the upload endpoint mounted.
type node struct {
	URL     string
	Uploads *upload.Uploads
	Catalog *auth.Catalog
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
}

func (e *env) node(cfg upload.Config) *node { return e.nodeWith(cfg, nil) }

// nodeWith is node with the upload deps adjusted by with.
func (e *env) nodeWith(cfg upload.Config, with func(*upload.Deps)) *node {
	t := e.t
	t.Helper()
	store, err := origin.NewS3(e.origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// Warnings and errors are kept and shown if the test fails: why the
	// node answered what it did (an origin error, a lock) under load.
	logs := &testenv.LockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			t.Logf("node log (warnings), last lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	// A generous lookup timeout: the default 100 ms answered a download
	// 503 catalog_unavailable on a loaded 2-core machine (-race, load 12).
	cat, err := auth.NewCatalog(auth.CatalogConfig{KeyPrefix: e.prefix + "file:meta:", Timeout: 5 * time.Second}, e.rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	deps := upload.Deps{Redis: e.rdb, S3: store, Catalog: cat, Purger: e.purged, Logger: log, Now: e.clock.Now}
	if with != nil {
		with(&deps)
	}
	u, err := upload.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	off := false
	p, err := proxy.New(proxy.Config{AccessLog: &off, DrainTimeout: 2 * time.Second, ReadTimeout: e.readTimeout},
		proxy.Deps{Origin: store, Catalog: cat, Uploads: u, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{URL: "http://" + ln.Addr().String(), Uploads: u, Catalog: cat, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- p.Serve(ctx, ln) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.once.Do(func() {
		n.cancel()
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			panic("bug: node did not stop within 20s")
		}
	})
}

func (e *env) token(u *upload.Uploads, g upload.Grant) string {
	e.t.Helper()
	if g.Bucket == "" {
		g.Bucket = e.bucket
	}
	if g.TTL == 0 {
		g.TTL = time.Hour
	}
	tok, err := u.CreateToken(context.Background(), g)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// multipartUploads lists the bucket's unfinished multipart uploads.
func (e *env) multipartUploads() []minio.ObjectMultipartInfo {
	e.t.Helper()
	r, err := e.core.ListMultipartUploads(context.Background(), e.bucket, "", "", "", "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Uploads
}

// objects lists the bucket's keys under prefix.
func (e *env) objects(prefix string) []string {
	var keys []string
	for o := range e.core.Client.ListObjects(context.Background(), e.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			e.t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// wantClean fails unless the bucket holds no multipart upload and no
// staging object.
func (e *env) wantClean() {
	e.t.Helper()
	if m := e.multipartUploads(); len(m) != 0 {
		e.t.Errorf("ListMultipartUploads: %d left, first %s", len(m), m[0].Key)
	}
	if s := e.objects(".tus-staging/"); len(s) != 0 {
		e.t.Errorf("staging objects left: %v", s)
	}
}

// tusReq sends a tus request and returns the response with its body read.
func tusReq(t testing.TB, method, url, token string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Content-Length" {
			fmt.Sscan(hdr[i+1], &req.ContentLength)
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

var httpClient = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

func wantStatus(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || (code != "" && !bytes.Contains(body, []byte(`"code":"`+code+`"`))) {
		t.Fatalf("%s %s: %d %s, want %d %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, body, status, code)
	}
}

// create POSTs a new upload of length bytes and returns its URL.
func create(t testing.TB, n *node, token string, length int64, hdr ...string) string {
	t.Helper()
	resp, body := tusReq(t, "POST", n.URL+"/uploads/", token, nil, append([]string{"Upload-Length", fmt.Sprint(length)}, hdr...)...)
	wantStatus(t, resp, body, 201, "")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	return loc
}

func patch(t testing.TB, url, token string, off int64, data []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return tusReq(t, "PATCH", url, token, bytes.NewReader(data), append([]string{"Upload-Offset", fmt.Sprint(off)}, hdr...)...)
}

// rawPatch starts a PATCH of loc from offset 0 on a connection of its own
// to the node at nodeURL: the head promises length bytes and part is sent
// at once, so that the test holds the request open mid-body, finishes it
// (wantRawStatus reads the answer) or hangs up. The connection is closed
// when the test ends.
func rawPatch(t testing.TB, nodeURL, loc, token string, length int, part []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(nodeURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: a\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", loc, token, length); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(part); err != nil {
		t.Fatal(err)
	}
	return conn
}

// wantRawStatus reads the status line of the answer on a rawPatch
// connection, waiting 30 s at most, and fails the test unless it is status.
func wantRawStatus(t testing.TB, conn net.Conn, what, status string) {
	t.Helper()
	line := make([]byte, 12)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(conn, line); err != nil || string(line[9:12]) != status {
		t.Fatalf("%s: %q %v", what, line, err)
	}
}

func offset(t testing.TB, url, token string) int64 {
	t.Helper()
	resp, body := tusReq(t, "HEAD", url, token, nil)
	wantStatus(t, resp, body, 200, "")
	var n int64
	fmt.Sscan(resp.Header.Get("Upload-Offset"), &n)
	return n
}

func meta(pairs ...string) string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, pairs[i]+" "+base64.StdEncoding.EncodeToString([]byte(pairs[i+1])))
	}
	return strings.Join(out, ",")
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func shaHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// download GETs /download/<id> and returns the body's SHA-256.
func download(t testing.TB, n *node, id string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(n.URL + "/download/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	io.Copy(h, resp.Body)
	return resp.StatusCode, hex.EncodeToString(h.Sum(nil))
}

// wantDownload fails t unless /download/<id> is 200 with exactly data.
func wantDownload(t testing.TB, n *node, id string, data []byte) {
	t.Helper()
	if status, sum := download(t, n, id); status != 200 || sum != shaHex(data) {
		t.Fatalf("download %s: %d %s, want 200 %s", id, status, sum, shaHex(data))
	}
}

// purgeLog records purges, standing in for the cache.
type purgeLog struct {
	mu   sync.Mutex
	keys []string
	n    atomic.Int64
}

func (p *purgeLog) Purge(bucket, key string) int {
	p.mu.Lock()
	p.keys = append(p.keys, bucket+"/"+key)
	p.mu.Unlock()
	p.n.Add(1)
	return 1
}

func (p *purgeLog) has(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k == s {
			return true
		}
	}
	return false
}

var _ = errors.New

func minioPutOptions() minio.PutObjectOptions { return minio.PutObjectOptions{} }

// locked reports whether some request holds the lock of the upload at
// location loc ("/uploads/<id>").
func (e *env) locked(loc string) bool {
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	n, err := e.rdb.Exists(context.Background(), e.prefix+"upload:lock:"+id).Result()
	return err == nil && n == 1
}
