package upload_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/upload"
)

// tus-js-client (testdata/tusjs, installed by scripts/test.sh with npm ci)
// is a tus client nobody here wrote: the endpoint must work with it as is.

// tusJS starts testdata/tusjs/upload.cjs with env and returns the process
// and its stdout lines.
func tusJS(t *testing.T, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: tus-js-client tests need Node 20")
	}
	dir, _ := filepath.Abs("testdata/tusjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tus-js-client")); err != nil {
		t.Fatal("tus-js-client is not installed: run scripts/test.sh (it runs npm ci in upload/testdata/tusjs)")
	}
	cmd := exec.Command(node, "upload.cjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &testWriter{t: t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("tus-js-client: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// nextLine returns the next line with prefix, failing after timeout or
// when the client exits.
func nextLine(t *testing.T, lines <-chan string, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tus-js-client exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix)
			}
		case <-deadline:
			t.Fatalf("no %q line from tus-js-client within %v", prefix, timeout)
		}
	}
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTusJSKilledAndResumedOnAnotherNode: tus-js-client uploads to node A
// in one streamed PATCH and is killed (SIGKILL) at half of the file;
// a new tus-js-client resumes the same upload URL on node B, which holds
// no local state of it. The file is exact, and no multipart upload or
// staged part is left.
func TestTusJSKilledAndResumedOnAnotherNode(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(e.config()), e.node(e.config())
	tok := e.token(a.Uploads, upload.Grant{Prefix: "js/"})
	// EDGEPROXY_TUSJS_MIB sets the file size for a one-off large run
	// (the 1 GiB figure); the suite uses 48 MiB.
	mib := 48
	if v, err := strconv.Atoi(os.Getenv("EDGEPROXY_TUSJS_MIB")); err == nil && v > 0 {
		mib = v
	}
	data := randBytes(11, mib<<20+777)
	file := writeFile(t, data)
	// The client talks to node A through a gate that passes half of the
	// file and then stops reading: however fast the upload and however
	// late this test reads the client's output, the kill lands mid-file.
	g := testenv.NewRelay(t, strings.TrimPrefix(a.URL, "http://"))
	half := g.HoldClientAfter(int64(len(data)) / 2)
	cmd, lines := tusJS(t, "ENDPOINT=http://"+g.Addr+"/uploads/", "FILE="+file, "TOKEN="+tok, "SHA256="+shaHex(data))
	url := nextLine(t, lines, "url ", time.Minute)
	select {
	case <-half:
	case <-time.After(5 * time.Minute):
		t.Fatal("tus-js-client did not send half of the file within 5 minutes")
	}
	cmd.Process.Kill()
	cmd.Wait()
	g.Cut() // node A sees the body end early, as when the client's host dies
	path := url[strings.Index(url, "/uploads/"):]
	var held int64
	testenv.WaitFor(t, 30*time.Second, "node A to keep the bytes it received", func() bool {
		held = offset(t, b.URL+path, tok)
		return held > 0
	})
	if held >= int64(len(data)) {
		t.Fatalf("offset %d: the client was killed after the whole file", held)
	}
	t.Logf("killed at half of the file; node B reports offset %d of %d", held, len(data))
	resumed := time.Now()

	cmd, lines = tusJS(t, "UPLOAD_URL="+b.URL+path, "FILE="+file, "TOKEN="+tok)
	nextLine(t, lines, "done", 10*time.Minute)
	cmd.Wait()
	t.Logf("resumed on node B: %d bytes in %v", int64(len(data))-held, time.Since(resumed).Round(time.Millisecond))
	wantDownload(t, b, path[len("/uploads/"):], data)
	e.wantClean()
}

// TestTusJSParallel: tus-js-client's parallelUploads (concatenation: three
// partial uploads in 6 MiB chunks, then a final one) through two nodes'
// worth of state, exact.
func TestTusJSParallel(t *testing.T) {
	e := newEnv(t)
	n := e.node(e.config())
	tok := e.token(n.Uploads, upload.Grant{Key: "par.bin", FileID: "par"})
	data := randBytes(12, 18<<20+7)
	file := writeFile(t, data)
	cmd, lines := tusJS(t, "ENDPOINT="+n.URL+"/uploads/", "FILE="+file, "TOKEN="+tok, "SHA256="+shaHex(data),
		"PARALLEL=3", "CHUNK="+strconv.Itoa(6<<20))
	nextLine(t, lines, "done", 3*time.Minute)
	cmd.Wait()
	wantDownload(t, n, "par", data)
	e.wantClean()
}
