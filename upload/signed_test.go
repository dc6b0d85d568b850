package upload_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/upload"
)

func testSigner(t *testing.T) *auth.Signer {
	t.Helper()
	s, err := auth.NewSigner(auth.SignerConfig{Keys: map[string]string{"k1": "0123456789abcdef0123456789abcdef"}, ActiveKey: "k1", Skew: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signedCreate is the creation URL of n signed for sc, valid for ttl on the
// test's clock.
func (e *env) signedCreate(s *auth.Signer, n *node, sc auth.UploadScope, ttl time.Duration) string {
	e.t.Helper()
	if sc.Bucket == "" {
		sc.Bucket = e.bucket
	}
	q, err := s.SignUpload("127.0.0.1", "/uploads/", sc, e.clock.Now().Add(ttl), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return n.URL + "/uploads/?" + q
}

// TestSignedUpload: a signed creation URL, with no token anywhere, creates
// an upload whose Location carries its credential; the upload resumes on
// another node (one without signing keys: what follows a creation is
// authorised by the upload's state) and completes exact, under the key
// the signature allows. Another is terminated. Nothing is left in MinIO.
func TestSignedUpload(t *testing.T) {
	e := newEnv(t)
	s := testSigner(t)
	a := e.nodeWith(e.config(), func(d *upload.Deps) { d.Signer = s })
	b := e.node(e.config())
	data := randBytes(21, 6<<20+333)
	create := e.signedCreate(s, a, auth.UploadScope{Prefix: "signed/", FileID: "sf", MaxSize: 8 << 20}, time.Hour)
	resp, body := tusReq(t, "POST", create, "", bytes.NewReader(data[:1<<20]), "Upload-Length", fmt.Sprint(len(data)),
		"Upload-Metadata", meta("filename", "a.bin", "sha256", shaHex(data)))
	wantStatus(t, resp, body, 201, "")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/uploads/") || !strings.Contains(loc, "?token=") || resp.Header.Get("Upload-Offset") != fmt.Sprint(1<<20) {
		t.Fatalf("Location %q, Upload-Offset %q", loc, resp.Header.Get("Upload-Offset"))
	}
	bare, _, _ := strings.Cut(loc, "?")
	resp, body = tusReq(t, "HEAD", b.URL+bare, "", nil)
	wantStatus(t, resp, body, 401, "")
	if off := offset(t, b.URL+loc, ""); off != 1<<20 {
		t.Fatalf("HEAD on node B: offset %d, want %d", off, 1<<20)
	}
	resp, body = patch(t, b.URL+loc, "", 1<<20, data[1<<20:])
	wantStatus(t, resp, body, 204, "")
	wantDownload(t, b, "sf", data)
	if keys := e.objects("signed/"); len(keys) != 1 || keys[0] != "signed/a.bin" {
		t.Fatalf("objects %v, want signed/a.bin", keys)
	}

	// Termination with the credential the Location carries.
	resp, body = tusReq(t, "POST", create, "", nil, "Upload-Length", "100")
	wantStatus(t, resp, body, 201, "")
	loc = resp.Header.Get("Location")
	resp, body = tusReq(t, "DELETE", b.URL+loc, "", nil)
	wantStatus(t, resp, body, 204, "")
	e.wantClean()
}

// TestSignedUploadRefusals: a tampered, expired, too small or misdirected
// signed URL is refused before anything exists in the store, with and
// without a body.
func TestSignedUploadRefusals(t *testing.T) {
	e := newEnv(t)
	s := testSigner(t)
	n := e.nodeWith(e.config(), func(d *upload.Deps) { d.Signer = s })
	unsigned := e.node(e.config())
	good := e.signedCreate(s, n, auth.UploadScope{Key: "r.bin", MaxSize: 1 << 20}, time.Hour)
	u, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	tampered := func(k, v string) string {
		q := u.Query()
		q.Set(k, v)
		return n.URL + "/uploads/?" + q.Encode()
	}
	sig := u.Query().Get("sig")
	q, err := s.SignUpload("127.0.0.1", "/elsewhere/", auth.UploadScope{Bucket: e.bucket, Key: "r.bin", MaxSize: 1 << 20}, e.clock.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	otherPath := n.URL + "/uploads/?" + q
	other := "A"
	if sig[0] == 'A' {
		other = "B"
	}
	body := bytes.Repeat([]byte("x"), 1000)
	for _, c := range []struct {
		name, url string
		status    int
		code      string
	}{
		{"bigger max_size", tampered("max_size", fmt.Sprint(2<<20)), 403, "signature_invalid"},
		{"other key", tampered("key", "s.bin"), 403, "signature_invalid"},
		{"prefix added", tampered("prefix", "p/"), 403, "signature_invalid"},
		{"later expiry", tampered("expires", fmt.Sprint(e.clock.Now().Add(48*time.Hour).Unix())), 403, "signature_invalid"},
		{"signature changed", tampered("sig", other+sig[1:]), 403, "signature_invalid"},
		{"unknown kid", tampered("kid", "k2"), 403, "signature_invalid"},
		{"bad max_size", tampered("max_size", "-1"), 403, "signature_invalid"},
		{"signed for another path", otherPath, 403, "signature_invalid"},
		{"node without keys", strings.Replace(good, n.URL, unsigned.URL, 1), 403, "signature_invalid"},
		{"bucket not for uploads", e.signedCreate(s, n, auth.UploadScope{Bucket: "elsewhere", Key: "r.bin"}, time.Hour), 403, "upload_token_scope"},
		{"max_size above the node's", e.signedCreate(s, n, auth.UploadScope{Key: "r.bin", MaxSize: 3 << 30}, time.Hour), 403, "upload_token_scope"},
		{"key the proxy cannot serve", e.signedCreate(s, n, auth.UploadScope{Key: "a/../b"}, time.Hour), 403, "upload_token_scope"},
	} {
		for _, withBody := range []bool{false, true} {
			var rd *bytes.Reader
			if withBody {
				rd = bytes.NewReader(body)
			}
			resp, b := tusReqBody(t, "POST", c.url, rd, "Upload-Length", "1000")
			if resp.StatusCode != c.status || !bytes.Contains(b, []byte(`"code":"`+c.code+`"`)) {
				t.Errorf("%s (body %v): %d %s, want %d %s", c.name, withBody, resp.StatusCode, b, c.status, c.code)
			}
		}
	}
	resp, b := tusReq(t, "POST", good, "", nil, "Upload-Length", fmt.Sprint(1<<20+1))
	wantStatus(t, resp, b, 413, "upload_too_large")
	// A token-made upload does not open with a signature, nor a signed
	// upload with another signature.
	tok := e.token(n.Uploads, upload.Grant{Key: "t.bin"})
	tokLoc := create(t, n, tok, 10)
	resp, b = tusReq(t, "HEAD", n.URL+tokLoc+"?token="+sig, "", nil)
	wantStatus(t, resp, b, 401, "")
	resp, b = tusReq(t, "DELETE", n.URL+tokLoc, tok, nil)
	wantStatus(t, resp, b, 204, "")
	// Expired: the node's clock past expires + skew. A genuine URL is told
	// it expired.
	e.clock.Advance(time.Hour + 11*time.Second)
	for _, rd := range []*bytes.Reader{nil, bytes.NewReader(body)} {
		resp, b = tusReqBody(t, "POST", good, rd, "Upload-Length", "1000")
		if resp.StatusCode != 403 || !bytes.Contains(b, []byte(`"code":"signature_expired"`)) {
			t.Errorf("expired: %d %s, want 403 signature_expired", resp.StatusCode, b)
		}
	}
	if m := e.multipartUploads(); len(m) != 0 {
		t.Fatalf("multipart uploads after refusals: %d, want 0", len(m))
	}
	e.wantClean()
}

// TestSignedConcat: partial uploads and their final upload made with one
// signed URL belong together (the signature is their shared credential),
// with the partial URLs given as the Locations carry them.
func TestSignedConcat(t *testing.T) {
	e := newEnv(t)
	s := testSigner(t)
	n := e.nodeWith(e.config(), func(d *upload.Deps) { d.Signer = s })
	createURL := e.signedCreate(s, n, auth.UploadScope{Key: "scc.bin", FileID: "scc"}, time.Hour)
	data := randBytes(8, 5<<20+4096)
	var locs []string
	for _, part := range [][]byte{data[:5<<20], data[5<<20:]} {
		resp, body := tusReqBody(t, "POST", createURL, bytes.NewReader(part), "Upload-Length", fmt.Sprint(len(part)), "Upload-Concat", "partial")
		wantStatus(t, resp, body, 201, "")
		locs = append(locs, resp.Header.Get("Location"))
	}
	resp, body := tusReq(t, "POST", createURL, "", nil, "Upload-Concat", "final;"+locs[0]+" "+n.URL+locs[1],
		"Upload-Metadata", meta("sha256", shaHex(data)))
	wantStatus(t, resp, body, 201, "")
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "?token=") {
		t.Fatalf("final Location %q carries no credential", loc)
	}
	wantDownload(t, n, "scc", data)
	e.wantClean()
}

// tusReqBody is tusReq without a token, with body possibly nil.
func tusReqBody(t *testing.T, method, url string, body *bytes.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if body == nil {
		return tusReq(t, method, url, "", nil, hdr...)
	}
	return tusReq(t, method, url, "", body, hdr...)
}

// TestTusJSSigned: tus-js-client, given only a signed creation URL (its
// Authorization header then carries no credential: "Bearer undefined"),
// follows the Locations with their ?token= through a parallel upload
// (partials and a final one) to an exact file.
func TestTusJSSigned(t *testing.T) {
	e := newEnv(t)
	s := testSigner(t)
	n := e.nodeWith(e.config(), func(d *upload.Deps) { d.Signer = s })
	data := randBytes(13, 12<<20+5)
	cmd, lines := tusJS(t, "ENDPOINT="+e.signedCreate(s, n, auth.UploadScope{Key: "js-signed.bin", FileID: "jss"}, time.Hour),
		"FILE="+writeFile(t, data), "SHA256="+shaHex(data), "PARALLEL=2", "CHUNK="+fmt.Sprint(4<<20))
	nextLine(t, lines, "done", 3*time.Minute)
	cmd.Wait()
	wantDownload(t, n, "jss", data)
	e.wantClean()
}
