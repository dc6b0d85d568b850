package upload_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/upload"
)

// react-uploady's tus sender (testdata/rpldy, installed by scripts/test.sh
// with npm ci) is a second tus client nobody here wrote, and unlike Uppy
// (which drives tus-js-client) its protocol code is its own.

// rpldy runs testdata/rpldy/upload.cjs to its end and returns the upload
// URL it printed.
func rpldy(t *testing.T, env ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: the rpldy tests need Node 20")
	}
	dir, _ := filepath.Abs("testdata/rpldy")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@rpldy", "tus-sender")); err != nil {
		t.Fatal("@rpldy/tus-sender is not installed: run scripts/test.sh (it runs npm ci in upload/testdata/rpldy)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "upload.cjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "done") {
		t.Fatalf("rpldy: %v\nstdout: %s\nstderr: %s", err, out, stderr.Bytes())
	}
	if stderr.Len() > 0 { // XHR_DEBUG=1 lists the requests rpldy made
		t.Logf("rpldy stderr:\n%s", stderr.Bytes())
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "done"))
}

// TestRpldyChunked: rpldy uploads in 3 MiB chunks (no chunk boundary on a
// part boundary, so tails are staged between PATCHes) to one node, with a
// token; the file is exact and nothing is left in MinIO.
func TestRpldyChunked(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "rp.bin", FileID: "rp"})
	data := randBytes(31, 13<<20+12345)
	rpldy(t, "ENDPOINT="+n.URL+"/uploads/", "FILE="+writeFile(t, data), "TOKEN="+tok, "SHA256="+shaHex(data),
		"CHUNK="+strconv.Itoa(3<<20))
	wantDownload(t, n, "rp", data)
	e.wantClean()
}

// TestRpldyParallelSigned: rpldy's parallel upload (two partial uploads,
// then a final one: concatenation) authorised by a signed URL alone; the
// partials' Locations carry the credential back.
func TestRpldyParallelSigned(t *testing.T) {
	e := newEnv(t)
	s := testSigner(t)
	n := e.nodeWith(e.config(), func(d *upload.Deps) { d.Signer = s })
	data := randBytes(32, 12<<20+99)
	rpldy(t, "ENDPOINT="+e.signedCreate(s, n, auth.UploadScope{Key: "rpp.bin", FileID: "rpp"}, time.Hour),
		"FILE="+writeFile(t, data), "SHA256="+shaHex(data), "PARALLEL=2", "CHUNK="+strconv.Itoa(4<<20))
	wantDownload(t, n, "rpp", data)
	e.wantClean()
}
