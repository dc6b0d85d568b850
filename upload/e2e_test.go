package upload_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/upload"
)

// TestTusChunksAnySize: chunks of any size (smaller than a part, across
// part boundaries, one byte) become 5 MiB parts plus a last one; the file
// is exact, registered in the catalog under the token's id, downloadable at
// once, the old cached version purged, and nothing is left in the store.
func TestTusChunksAnySize(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "videos/a.bin", FileID: "file-a"})
	data := randBytes(1, 13<<20+12345)
	url := n.URL + create(t, n, tok, int64(len(data)), "Upload-Metadata", meta("filename", "a.bin", "sha256", shaHex(data)))
	if off := offset(t, url, tok); off != 0 {
		t.Fatalf("new upload at offset %d", off)
	}
	var off int64
	for _, size := range []int64{3 << 20, 4 << 20, 1, 5<<20 - 1, 123, int64(len(data))} {
		end := min(off+size, int64(len(data)))
		resp, body := patch(t, url, tok, off, data[off:end])
		wantStatus(t, resp, body, 204, "")
		if got := resp.Header.Get("Upload-Offset"); got != fmt.Sprint(end) {
			t.Fatalf("PATCH [%d,%d): Upload-Offset %s", off, end, got)
		}
		off = end
		if off == int64(len(data)) {
			break
		}
		if got := offset(t, url, tok); got != off {
			t.Fatalf("HEAD: offset %d, want %d", got, off)
		}
	}
	wantDownload(t, n, "file-a", data)
	m, err := n.Catalog.Lookup(context.Background(), "file-a")
	if err != nil || m.SHA256 != shaHex(data) || m.Size != int64(len(data)) || m.Key != "videos/a.bin" || m.Filename != "a.bin" {
		t.Fatalf("catalog: %+v, %v", m, err)
	}
	if !e.purged.has(e.bucket + "/videos/a.bin") {
		t.Errorf("no purge of the replaced object")
	}
	e.wantClean()
}

// TestTusResumeOnAnotherNode: a PATCH cut off mid-body on node A keeps the
// bytes A received (a part in S3, the rest staged); node B answers HEAD
// with that offset and finishes the upload, exact.
func TestTusResumeOnAnotherNode(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(e.config()), e.node(e.config())
	tok := e.token(a.Uploads, upload.Grant{Prefix: "in/"})
	data := randBytes(2, 12<<20)
	loc := create(t, a, tok, int64(len(data)), "Upload-Metadata", meta("filename", "x.bin", "sha256", shaHex(data)))

	// A raw PATCH that promises the whole file and sends 7 MiB + 3 bytes.
	sent := 7<<20 + 3
	rawPatch(t, a.URL, loc, tok, len(data), data[:sent]).Close()
	testenv.WaitFor(t, 30*time.Second, "node A to commit the bytes it got", func() bool {
		resp, _ := tusReq(t, "HEAD", b.URL+loc, tok, nil)
		return resp.Header.Get("Upload-Offset") == fmt.Sprint(sent)
	})
	if s := e.objects(".tus-staging/"); len(s) != 1 {
		t.Fatalf("staged objects %v, want the incomplete part", s)
	}
	resp, body := patch(t, b.URL+loc, tok, int64(sent), data[sent:])
	wantStatus(t, resp, body, 204, "")
	id := loc[len("/uploads/"):]
	wantDownload(t, b, id, data)
	if keys := e.objects("in/"); len(keys) != 1 || keys[0] != "in/x.bin" {
		t.Fatalf("objects %v", keys)
	}
	e.wantClean()
}

// TestTusChecksum: a PATCH whose Upload-Checksum does not match is 460
// and keeps nothing; one that matches (sha1, sha256) is kept.
func TestTusChecksum(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "c/"})
	data := randBytes(3, 6<<20)
	url := n.URL + create(t, n, tok, int64(len(data)))
	s1 := sha1.Sum(data[:1<<20])
	bad := sha256.Sum256([]byte("not the data"))
	resp, body := patch(t, url, tok, 0, data[:1<<20], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(bad[:]))
	wantStatus(t, resp, body, 460, "checksum_mismatch")
	if off := offset(t, url, tok); off != 0 {
		t.Fatalf("offset %d after a mismatch", off)
	}
	resp, body = patch(t, url, tok, 0, data[:1<<20], "Upload-Checksum", "md4 AAAA")
	wantStatus(t, resp, body, 400, "bad_checksum")
	resp, body = patch(t, url, tok, 0, data[:1<<20], "Upload-Checksum", "sha1 "+base64.StdEncoding.EncodeToString(s1[:]))
	wantStatus(t, resp, body, 204, "")
	s2 := sha256.Sum256(data[1<<20:])
	resp, body = patch(t, url, tok, 1<<20, data[1<<20:], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(s2[:]))
	wantStatus(t, resp, body, 204, "")
	wantDownload(t, n, url[strings.LastIndexByte(url, '/')+1:], data)
	e.wantClean()
}

// TestTusFileSHA256Mismatch: a file whose bytes do not match the declared
// sha256 is discarded: 460, no object, no multipart upload, no catalog
// entry.
func TestTusFileSHA256Mismatch(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "m.bin", FileID: "m"})
	data := randBytes(4, 6<<20)
	url := n.URL + create(t, n, tok, int64(len(data)), "Upload-Metadata", meta("sha256", shaHex([]byte("other"))))
	resp, body := patch(t, url, tok, 0, data)
	wantStatus(t, resp, body, 460, "sha256_mismatch")
	if keys := e.objects("m.bin"); len(keys) != 0 {
		t.Fatalf("object written: %v", keys)
	}
	if status, _ := download(t, n, "m"); status != 404 {
		t.Fatalf("download status %d, want 404", status)
	}
	e.wantClean()
}

// TestTusTermination: DELETE aborts the multipart upload and removes the
// staged part; the upload is then 404.
func TestTusTermination(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "d/"})
	data := randBytes(5, 7<<20)
	url := n.URL + create(t, n, tok, 20<<20)
	resp, body := patch(t, url, tok, 0, data)
	wantStatus(t, resp, body, 204, "")
	if len(e.multipartUploads()) != 1 || len(e.objects(".tus-staging/")) != 1 {
		t.Fatalf("before DELETE: %d multipart uploads, staged %v", len(e.multipartUploads()), e.objects(".tus-staging/"))
	}
	resp, body = tusReq(t, "DELETE", url, tok, nil)
	wantStatus(t, resp, body, 204, "")
	resp, body = tusReq(t, "HEAD", url, tok, nil)
	wantStatus(t, resp, body, 404, "")
	e.wantClean()
}

// TestTusExpiry: an upload idle past its expiry is gone (404), and the
// janitor aborts its multipart upload and deletes its staged part, also a
// multipart upload no state owns (a node that crashed before saving).
func TestTusExpiry(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "e/"})
	url := n.URL + create(t, n, tok, 20<<20)
	resp, body := patch(t, url, tok, 0, randBytes(6, 6<<20))
	wantStatus(t, resp, body, 204, "")
	if exp, err := time.Parse(time.RFC1123, resp.Header.Get("Upload-Expires")); err != nil || exp.Before(e.clock.Now().Add(50*time.Minute)) {
		t.Fatalf("Upload-Expires %q", resp.Header.Get("Upload-Expires"))
	}
	// The crashed node's leftover.
	if _, err := e.core.NewMultipartUpload(context.Background(), e.bucket, "e/orphan", minioPutOptions()); err != nil {
		t.Fatal(err)
	}
	res, err := n.Uploads.Sweep(context.Background())
	if err != nil || res.Aborted != 0 || res.Staged != 0 {
		t.Fatalf("sweep before expiry: %+v, %v", res, err)
	}
	e.clock.Advance(61 * time.Minute)
	resp, body = tusReq(t, "HEAD", url, tok, nil)
	wantStatus(t, resp, body, 404, "") // HEAD: no body
	res, err = n.Uploads.Sweep(context.Background())
	if err != nil || res.Aborted != 2 || res.Staged != 1 {
		t.Fatalf("sweep after expiry: %+v, %v", res, err)
	}
	e.wantClean()
}

// TestTusConcat: two partial uploads, then a final one, copied part by
// part in the store and checked against the declared sha256.
func TestTusConcat(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "cc.bin", FileID: "cc"})
	data := randBytes(7, 7<<20)
	p1 := create(t, n, tok, 5<<20, "Upload-Concat", "partial")
	p2 := create(t, n, tok, 2<<20, "Upload-Concat", "partial")
	resp, body := patch(t, n.URL+p2, tok, 0, data[5<<20:])
	wantStatus(t, resp, body, 204, "")
	resp, body = patch(t, n.URL+p1, tok, 0, data[:5<<20])
	wantStatus(t, resp, body, 204, "")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, nil, "Upload-Concat", "final;"+p1+" "+n.URL+p2,
		"Upload-Metadata", meta("sha256", shaHex(data)))
	wantStatus(t, resp, body, 201, "")
	wantDownload(t, n, "cc", data)
	e.wantClean()
}

// TestTusRefusals: what is refused, with which status, and that no
// refusal leaves a multipart upload behind.
func TestTusRefusals(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "r.bin", MaxSize: 1 << 20})
	other := e.token(n.Uploads, upload.Grant{Key: "o.bin"})
	resp, body := tusReq(t, "POST", n.URL+"/uploads/", "", nil, "Upload-Length", "10")
	wantStatus(t, resp, body, 401, "upload_token_invalid")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", "nope", nil, "Upload-Length", "10")
	wantStatus(t, resp, body, 401, "upload_token_invalid")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, nil, "Upload-Length", fmt.Sprint(1<<20+1))
	wantStatus(t, resp, body, 413, "upload_too_large")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, nil)
	wantStatus(t, resp, body, 400, "bad_upload_length")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, nil, "Upload-Length", "10", "Upload-Metadata", "a !!!")
	wantStatus(t, resp, body, 400, "bad_metadata")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, nil, "Upload-Length", "10", "Tus-Resumable", "0.2.2")
	wantStatus(t, resp, body, 412, "tus_version")
	resp, body = tusReq(t, "POST", n.URL+"/uploads/", tok, bytes.NewReader(make([]byte, 20)), "Upload-Length", "10")
	wantStatus(t, resp, body, 413, "beyond_length")
	if m := e.multipartUploads(); len(m) != 0 {
		t.Fatalf("multipart uploads after refusals: %d, want 0", len(m))
	}
	url := n.URL + create(t, n, tok, 10)
	resp, body = tusReq(t, "HEAD", url, other, nil)
	wantStatus(t, resp, body, 401, "")
	resp, body = patch(t, url, tok, 3, []byte("x"))
	wantStatus(t, resp, body, 409, "offset_mismatch")
	resp, body = patch(t, url, tok, 0, []byte("0123456789abc"))
	wantStatus(t, resp, body, 413, "beyond_length")
	resp, body = tusReq(t, "PATCH", url, tok, strings.NewReader("x"), "Upload-Offset", "0", "Content-Type", "text/plain")
	wantStatus(t, resp, body, 415, "bad_content_type")
	resp, body = tusReq(t, "GET", url, tok, nil)
	wantStatus(t, resp, body, 405, "method_not_allowed")
	resp, body = tusReq(t, "HEAD", n.URL+"/uploads/short", tok, nil)
	wantStatus(t, resp, body, 404, "")
	// OPTIONS: the server's capabilities, no version needed.
	resp, body = tusReq(t, "OPTIONS", n.URL+"/uploads/", "", nil, "Tus-Resumable", "")
	wantStatus(t, resp, body, 204, "")
	if resp.Header.Get("Tus-Version") != "1.0.0" || !strings.Contains(resp.Header.Get("Tus-Extension"), "concatenation") ||
		resp.Header.Get("Tus-Max-Size") != fmt.Sprint(int64(2<<30)) || !strings.Contains(resp.Header.Get("Tus-Checksum-Algorithm"), "sha1") {
		t.Fatalf("OPTIONS headers %v", resp.Header)
	}
}

// TestFrontDoorStillRefusesBodies: with uploads mounted, a body anywhere
// else, or on a method other than PATCH and POST, is still 400
// body_not_allowed; ambiguous framing under the prefix is 400.
func TestFrontDoorStillRefusesBodies(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	addr := strings.TrimPrefix(n.URL, "http://")
	for _, tt := range []struct{ req, want string }{
		{"POST /download/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"PUT /uploads/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"POST /uploadsx HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"PATCH /uploads/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"PATCH /uploads/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "400"},
		{"PATCH /uploads/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", "400"},
		// Well framed: reaches the endpoint, which wants Tus-Resumable.
		{"PATCH /uploads/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "412"},
		{"POST /uploads HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\na", "412"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, tt.req)
		line := make([]byte, 12)
		_, err = io.ReadFull(c, line)
		c.Close()
		if err != nil || string(line[9:12]) != tt.want {
			t.Errorf("%q: %q %v, want %s", tt.req, line, err, tt.want)
		}
	}
}

// TestTusCreationWithUploadAndEmpty: a POST may carry the first bytes
// (creation-with-upload); a zero-length upload completes at creation.
func TestTusCreationWithUploadAndEmpty(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "cw/"})
	data := randBytes(8, 6<<20+5)
	resp, body := tusReq(t, "POST", n.URL+"/uploads/", tok, bytes.NewReader(data[:1<<20]), "Upload-Length", fmt.Sprint(len(data)))
	wantStatus(t, resp, body, 201, "")
	if resp.Header.Get("Upload-Offset") != fmt.Sprint(1<<20) {
		t.Fatalf("creation-with-upload: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	loc := resp.Header.Get("Location")
	resp, body = patch(t, n.URL+loc, tok, 1<<20, data[1<<20:])
	wantStatus(t, resp, body, 204, "")
	wantDownload(t, n, loc[len("/uploads/"):], data)

	empty := create(t, n, tok, 0, "Upload-Metadata", meta("filename", "empty.txt"))
	if off := offset(t, n.URL+empty, tok); off != 0 {
		t.Fatalf("empty upload: offset %d", off)
	}
	wantDownload(t, n, empty[len("/uploads/"):], nil)
	e.wantClean()
}

// TestTusLocked: while a PATCH is writing an upload, a second PATCH to it,
// on any node, is 423 (tus clients retry) and HEAD still answers; once the
// first ends, the second succeeds.
func TestTusLocked(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(e.config()), e.node(e.config())
	tok := e.token(a.Uploads, upload.Grant{Prefix: "l/"})
	loc := create(t, a, tok, 10000)
	// More than the 4 KiB fasthttp reads before it calls the handler.
	conn := rawPatch(t, a.URL, loc, tok, 10000, bytes.Repeat([]byte("a"), 6000))
	// Wait on the lock in Redis: a probe PATCH sent before the first one
	// takes the lock would take it itself, and write its byte.
	testenv.WaitFor(t, 30*time.Second, "the first PATCH to hold the lock", func() bool {
		return e.locked(loc)
	})
	if resp, body := patch(t, b.URL+loc, tok, 0, []byte("b")); resp.StatusCode != 423 {
		t.Fatalf("PATCH on node B during node A's: %d %s, want 423", resp.StatusCode, body)
	}
	if off := offset(t, b.URL+loc, tok); off != 0 {
		t.Fatalf("HEAD during the PATCH: offset %d", off)
	}
	io.WriteString(conn, strings.Repeat("a", 4000))
	wantRawStatus(t, conn, "first PATCH", "204")
	if off := offset(t, b.URL+loc, tok); off != 10000 {
		t.Fatalf("offset %d after the first PATCH", off)
	}
	e.wantClean()
}

// TestTusLimiter: a client's uploads count toward the limiter's
// per-client concurrency: while one PATCH runs, a second from the same
// client (another upload) is 429 with Retry-After; afterwards it passes.
func TestTusLimiter(t *testing.T) {
	e := newEnv(t)
	lim, err := limiter.New(limiter.Config{MaxConcurrentPerClient: 1}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Close() })
	n := e.nodeWith(e.config(), func(d *upload.Deps) { d.Limiter = lim })
	tok := e.token(n.Uploads, upload.Grant{Prefix: "lim/"})
	first, second := create(t, n, tok, 10000), create(t, n, tok, 10)
	conn := rawPatch(t, n.URL, first, tok, 10000, bytes.Repeat([]byte("a"), 6000))
	// Wait on the limiter itself: a probe request would take the client's
	// one slot for a moment and could refuse the first PATCH instead.
	testenv.WaitFor(t, 30*time.Second, "the first PATCH to hold the client's slot", func() bool {
		return lim.Stats().ActiveDownloads == 1
	})
	resp, body := patch(t, n.URL+second, tok, 0, []byte("0123456789"))
	wantStatus(t, resp, body, 429, "too_many_uploads")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	io.WriteString(conn, strings.Repeat("a", 4000))
	wantRawStatus(t, conn, "first PATCH", "204")
	resp, body = patch(t, n.URL+second, tok, 0, []byte("0123456789"))
	wantStatus(t, resp, body, 204, "")
	e.wantClean()
}

// TestTusPurgeOtherNodes: completing an upload on node A purges the object
// from node B's cache, through Redis.
func TestTusPurgeOtherNodes(t *testing.T) {
	e := newEnv(t)
	a := e.node(e.config())
	bPurged := &purgeLog{}
	b := e.nodeWith(e.config(), func(d *upload.Deps) { d.Purger = bPurged })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Uploads.Subscribe(ctx)
	testenv.WaitFor(t, 30*time.Second, "node B to subscribe", func() bool {
		n, _ := e.rdb.PubSubNumSub(ctx, e.prefix+"purge").Result()
		return n[e.prefix+"purge"] > 0
	})
	tok := e.token(a.Uploads, upload.Grant{Key: "p/x.bin"})
	url := a.URL + create(t, a, tok, 3)
	resp, body := patch(t, url, tok, 0, []byte("abc"))
	wantStatus(t, resp, body, 204, "")
	testenv.WaitFor(t, 30*time.Second, "node B's purge", func() bool { return bPurged.has(e.bucket + "/p/x.bin") })
}

// TestTusJanitorSparesActiveUploads: an upload begun longer ago than the
// expiry but written to since is live: the janitor leaves its multipart
// upload and staged part alone, and it completes.
func TestTusJanitorSparesActiveUploads(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "j/"})
	data := randBytes(9, 6<<20)
	url := n.URL + create(t, n, tok, int64(len(data)))
	e.clock.Advance(50 * time.Minute)
	resp, body := patch(t, url, tok, 0, data[:1<<20])
	wantStatus(t, resp, body, 204, "")
	e.clock.Advance(20 * time.Minute) // begun 70 minutes ago, expiry 60, active 20 minutes ago
	res, err := n.Uploads.Sweep(context.Background())
	if err != nil || res.Aborted != 0 || res.Staged != 0 || res.States != 0 {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	resp, body = patch(t, url, tok, 1<<20, data[1<<20:])
	wantStatus(t, resp, body, 204, "")
	wantDownload(t, n, url[strings.LastIndexByte(url, '/')+1:], data)
	e.wantClean()
}

// failingRegistry fails its first fails calls, then passes to inner.
type failingRegistry struct {
	inner upload.Registry
	fails atomic.Int32
}

func (f *failingRegistry) Put(ctx context.Context, m auth.FileMeta) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("catalog down")
	}
	return f.inner.Put(ctx, m)
}

// TestTusRegistrationRetried: when the catalog fails after the object is
// complete, the PATCH is 503 and HEAD, what a tus client sends next,
// registers the file before it reports the upload complete.
func TestTusRegistrationRetried(t *testing.T) {
	e := newEnv(t)
	reg := &failingRegistry{}
	reg.fails.Store(1)
	var n *node
	n = e.nodeWith(e.config(), func(d *upload.Deps) { reg.inner = d.Catalog; d.Catalog = reg })
	tok := e.token(n.Uploads, upload.Grant{Key: "reg.bin", FileID: "reg"})
	url := n.URL + create(t, n, tok, 3)
	resp, body := patch(t, url, tok, 0, []byte("abc"))
	wantStatus(t, resp, body, 503, "upload_state_unavailable")
	if status, _ := download(t, n, "reg"); status != 404 {
		t.Fatalf("download before registration: %d", status)
	}
	if off := offset(t, url, tok); off != 3 {
		t.Fatalf("HEAD: offset %d", off)
	}
	wantDownload(t, n, "reg", []byte("abc"))
	e.wantClean()
}

// TestTusIdleClientKeepsBytes: a client that stops sending mid-body, with
// its connection open, is cut after idle_timeout and the bytes it sent are
// kept, so it can resume. The listener's read timeout is longer than the
// wait: the upload's own idle timeout is what ends the PATCH.
func TestTusIdleClientKeepsBytes(t *testing.T) {
	e := newEnv(t)
	e.readTimeout = 5 * time.Minute
	cfg := e.config()
	cfg.IdleTimeout = 500 * time.Millisecond
	n := e.node(cfg)
	tok := e.token(n.Uploads, upload.Grant{Prefix: "idle/"})
	loc := create(t, n, tok, 10000)
	rawPatch(t, n.URL, loc, tok, 10000, bytes.Repeat([]byte("a"), 6000))
	testenv.WaitFor(t, 30*time.Second, "the idle PATCH to end with its bytes kept", func() bool {
		resp, _ := tusReq(t, "HEAD", n.URL+loc, tok, nil)
		return resp.Header.Get("Upload-Offset") == "6000"
	})
	resp, body := patch(t, n.URL+loc, tok, 6000, bytes.Repeat([]byte("b"), 4000))
	wantStatus(t, resp, body, 204, "")
	e.wantClean()
}

// TestTusTailKeptLocally: the node that staged a tail reads it from its
// own disk on the next PATCH (the staging object, removed behind its back
// here, is not read); another node reads the staging object, which the
// first node wrote again.
func TestTusTailKeptLocally(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(e.config()), e.node(e.config())
	tok := e.token(a.Uploads, upload.Grant{Prefix: "tl/"})
	data := randBytes(10, 7<<20)
	loc := create(t, a, tok, int64(len(data)))
	id := loc[len("/uploads/"):]
	resp, body := patch(t, a.URL+loc, tok, 0, data[:2<<20])
	wantStatus(t, resp, body, 204, "")
	if err := e.core.RemoveObject(context.Background(), e.bucket, ".tus-staging/"+id, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, body = patch(t, a.URL+loc, tok, 2<<20, data[2<<20:4<<20])
	wantStatus(t, resp, body, 204, "") // from A's disk: S3 no longer has it
	resp, body = patch(t, b.URL+loc, tok, 4<<20, data[4<<20:])
	wantStatus(t, resp, body, 204, "") // B reads the tail A staged again
	wantDownload(t, b, id, data)
	e.wantClean()
}

// TestTusRefusalReadableWhileBodyArrives: a PATCH refused before its body
// is read (here an unsupported checksum algorithm) closes the connection
// lingering, so a client still sending the body reads the 400 rather than
// a reset. Without the lingering close the server closed with the body
// unread and Go's client saw "connection reset by peer" in about one
// request of five.
func TestTusRefusalReadableWhileBodyArrives(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Prefix: "r/"})
	url := n.URL + create(t, n, tok, 8<<20)
	body := bytes.Repeat([]byte("x"), 512<<10) // within the linger's byte budget
	for range 20 {
		resp, got := patch(t, url, tok, 0, body, "Upload-Checksum", "md4 AAAA")
		wantStatus(t, resp, got, 400, "bad_checksum")
	}
}
