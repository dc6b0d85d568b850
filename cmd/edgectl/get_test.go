package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// objectServer serves one object with net/http's ServeContent (Range and
// If-Range as the standard library implements them), with faults a test
// switches on: versions that change after some requests, connections cut
// in the middle of a body, ranges ignored, no ETag.
type objectServer struct {
	mu       sync.Mutex
	versions [][]byte
	cur      int
	// changeAfter, when > 0, moves to the next version after that many
	// requests (counted from the last change); changeEvery moves on every
	// request.
	changeAfter, changeEvery int
	sinceChange              int
	// cutEvery cuts the body of every n-th ranged request after half of it.
	cutEvery    int
	noRanges    bool
	weakETag    bool
	delay       time.Duration // before each answer
	failFirst   int           // the first requests get 503
	requests    int
	ranged      int
	sent        atomic.Int64
	authSeen    []string
	lastIfRange []string
}

func (s *objectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.sinceChange++
	switch {
	case s.changeEvery > 0 && s.requests > 1:
		s.cur = (s.cur + 1) % len(s.versions)
	case s.changeAfter > 0 && s.sinceChange > s.changeAfter && s.cur+1 < len(s.versions):
		s.cur++
		s.sinceChange = 1
	}
	data, v := s.versions[s.cur], s.cur
	cut := false
	if r.Header.Get("Range") != "" {
		s.ranged++
		cut = s.cutEvery > 0 && s.ranged%s.cutEvery == 0
	}
	s.authSeen = append(s.authSeen, r.Header.Get("Authorization"))
	s.lastIfRange = append(s.lastIfRange, r.Header.Get("If-Range"))
	noRanges, weak, delay := s.noRanges, s.weakETag, s.delay
	fail := s.requests <= s.failFirst
	s.mu.Unlock()
	if fail {
		http.Error(w, `{"code":"origin_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	time.Sleep(delay)

	if weak {
		w.Header().Set("ETag", fmt.Sprintf(`W/"v%d"`, v))
	} else {
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
	}
	if noRanges {
		r.Header.Del("Range")
	}
	cw := &countingResponse{ResponseWriter: w, n: &s.sent}
	if cut {
		cw.limit = 1 // set below once the length is known
	}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
}

// countingResponse counts body bytes; with limit set, it stops after half
// the declared length and breaks the connection.
type countingResponse struct {
	http.ResponseWriter
	n       *atomic.Int64
	limit   int64
	written int64
}

func (c *countingResponse) Write(p []byte) (int, error) {
	if c.limit > 0 {
		var total int64
		fmt.Sscan(c.Header().Get("Content-Length"), &total)
		half := total / 2
		if c.written+int64(len(p)) > half {
			p = p[:max(0, half-c.written)]
			c.ResponseWriter.Write(p)
			c.n.Add(int64(len(p)))
			panic(http.ErrAbortHandler) // the client sees a short body
		}
	}
	m, err := c.ResponseWriter.Write(p)
	c.written += int64(m)
	c.n.Add(int64(m))
	return m, err
}

func startObjectServer(t *testing.T, s *objectServer) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// smallPieces shrinks the piece size and the pauses for a test.
func smallPieces(t *testing.T, piece int64) {
	old, oldB, oldC := getPieceSize, getBackoff, getCheckpoint
	getPieceSize, getBackoff, getCheckpoint = piece, time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() { getPieceSize, getBackoff, getCheckpoint = old, oldB, oldC })
}

func runGetCmd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"get"}, args...), env, &out, &errb)
	return code, out.String(), errb.String()
}

func pseudoBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestGetFaults(t *testing.T) {
	smallPieces(t, 64<<10)
	v0, v1 := pseudoBytes(1, 2<<20+12345), pseudoBytes(2, 1<<20+777)
	for _, tc := range []struct {
		name    string
		srv     *objectServer
		args    []string
		code    int
		want    []byte
		stderr  string // a part of stderr
		verify  bool
		minReqs int
	}{
		{name: "parallel, cut connections retried", srv: &objectServer{versions: [][]byte{v0}, cutEvery: 3}, args: []string{"-c", "8"}, want: v0, minReqs: 33},
		{name: "one connection", srv: &objectServer{versions: [][]byte{v0}}, args: []string{"-c", "1"}, want: v0},
		{name: "first requests fail with 503: retried", srv: &objectServer{versions: [][]byte{v0}, failFirst: 2}, args: []string{"-c", "4"}, want: v0},
		{name: "503 for good: exit 1", srv: &objectServer{versions: [][]byte{v0}, failFirst: 1000}, code: exitFailed, stderr: "503"},
		{name: "object replaced during the download: starts over, no splice", srv: &objectServer{versions: [][]byte{v0, v1}, changeAfter: 10}, args: []string{"-c", "4"}, want: v1},
		{name: "object changing on every request", srv: &objectServer{versions: [][]byte{v0, v1, v0[:200000]}, changeEvery: 1}, args: []string{"-c", "2"}, code: exitChanged, stderr: "changed"},
		{name: "ranges ignored: one stream", srv: &objectServer{versions: [][]byte{v0}, noRanges: true}, args: []string{"-c", "8"}, want: v0},
		{name: "weak ETag: one stream", srv: &objectServer{versions: [][]byte{v0}, weakETag: true}, args: []string{"-c", "8"}, want: v0},
		{name: "empty object", srv: &objectServer{versions: [][]byte{{}}}, want: []byte{}},
		{name: "smaller than one piece", srv: &objectServer{versions: [][]byte{v0[:1000]}}, args: []string{"-c", "8"}, want: v0[:1000]},
		{name: "sha256 verified", srv: &objectServer{versions: [][]byte{v0}}, args: []string{"-sha256", strings.ToUpper(hexSHA(v0))}, want: v0, verify: true, stderr: "sha256 verified against -sha256"},
		{name: "sha256 mismatch", srv: &objectServer{versions: [][]byte{v0}}, args: []string{"-sha256", hexSHA(v1)}, code: exitChecksum, stderr: "SHA-256 " + hexSHA(v0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := startObjectServer(t, tc.srv)
			out := filepath.Join(t.TempDir(), "out.bin")
			code, stdout, stderr := runGetCmd(t, nil, append([]string{u + "/obj/a.bin", "-o", out}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if _, err := os.Stat(out + stateSuffix); code != exitChanged && !os.IsNotExist(err) {
				t.Fatalf("state file left after exit %d: %v", code, err)
			}
			if tc.code != 0 {
				return
			}
			got, err := os.ReadFile(out)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("file: %d bytes (%v), want %d bytes of version %q", len(got), err, len(tc.want), tc.srv.lastIfRange)
			}
			var res getResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Size != int64(len(tc.want)) || res.Verified != tc.verify {
				t.Fatalf("stdout %q (%v)", stdout, err)
			}
			if !tc.verify && !strings.Contains(stderr, "not verified") {
				t.Fatalf("stderr %q does not say the file was not verified", stderr)
			}
			if tc.srv.requests < tc.minReqs {
				t.Fatalf("%d requests, want at least %d", tc.srv.requests, tc.minReqs)
			}
		})
	}
}

// Ranged requests after the first carry If-Range with the strong ETag, and
// a token from the environment goes in Authorization, never in the output.
func TestGetIfRangeAndToken(t *testing.T) {
	smallPieces(t, 64<<10)
	const token = "tok-SECRET-0123456789"
	s := &objectServer{versions: [][]byte{pseudoBytes(3, 1<<20)}}
	u := startObjectServer(t, s)
	out := filepath.Join(t.TempDir(), "x")
	code, _, stderr := runGetCmd(t, []string{"EDGECTL_TOKEN=" + token}, u+"/f", "-o", out, "-c", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastIfRange[0] != "" {
		t.Fatalf("the probe carried If-Range %q", s.lastIfRange[0])
	}
	for i, v := range s.lastIfRange[1:] {
		if v != `"v0"` {
			t.Fatalf("request %d: If-Range %q", i+1, v)
		}
	}
	for _, a := range s.authSeen {
		if a != "Bearer "+token {
			t.Fatalf("Authorization %q", a)
		}
	}
	if strings.Contains(stderr, token) {
		t.Fatalf("stderr shows the token: %q", stderr)
	}
}

// Errors name the URL with its query values cut short: a token or a
// signature in the URL is never printed.
func TestGetErrorsRedactURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"code":"token_invalid","message":"the token is not valid"}`))
	}))
	t.Cleanup(srv.Close)
	out := filepath.Join(t.TempDir(), "x")
	code, stdout, stderr := runGetCmd(t, nil, srv.URL+"/download/7?token=SECRETTOKEN123&sig=SIGNATURE999", "-o", out)
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, "403") || !strings.Contains(stderr, "token_invalid") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused get left %s: %v", out, err)
	}
	// An existing file is not cut by a refused get.
	os.WriteFile(out, []byte("keep me"), 0o644)
	if code, _, _ := runGetCmd(t, nil, srv.URL+"/download/7", "-o", out); code != exitFailed {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatalf("the existing file became %q", b)
	}
	if strings.Contains(stderr, "SECRETTOKEN123") || strings.Contains(stderr, "SIGNATURE999") || !strings.Contains(stderr, "SECR…") {
		t.Fatalf("stderr %q: want the query values redacted", stderr)
	}
	// A connection refused names no token either.
	ln := srv.Listener.Addr().String()
	srv.Close()
	code, _, stderr = runGetCmd(t, nil, "http://"+ln+"/download/7?token=SECRETTOKEN123", "-o", out)
	if code != exitFailed || strings.Contains(stderr, "SECRETTOKEN123") {
		t.Fatalf("unreachable: exit %d, stderr %q", code, stderr)
	}
}

func TestGetUsageAndLocalErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"ftp://x/y"},
		{"http://127.0.0.1:1/a", "-c", "0"},
		{"http://127.0.0.1:1/a", "-c", "65"},
		{"http://127.0.0.1:1/a", "-sha256", "abc"},
		{"http://127.0.0.1:1/"},
		{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"},
	} {
		if code, _, stderr := runGetCmd(t, nil, args...); code != 2 || !strings.Contains(stderr, "usage: edgectl get") {
			t.Errorf("get %v: exit %d, stderr %q; want 2 with usage", args, code, stderr)
		}
	}
	// A state file of another URL is not overwritten.
	out := filepath.Join(dir, "o")
	os.WriteFile(out, make([]byte, 10), 0o644)
	st := &getState{URL: "http://other.example/x", ETag: `"e"`, Size: 10}
	if err := saveState(out+stateSuffix, st); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runGetCmd(t, nil, "http://127.0.0.1:1/o", "-o", out)
	if code != exitLocal || !strings.Contains(stderr, "belongs to a download of http://other.example/x") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// Flags after the URL work too; help exits 0.
	if code, stdout, _ := runGetCmd(t, nil, "-h"); code != 0 || !strings.Contains(stdout, "If-Range") {
		t.Fatalf("get -h: exit %d, %q", code, stdout)
	}
}

// A resumed download fetches only what the state file says is missing,
// with If-Range, and a state whose file was cut is not trusted.
func TestGetResumeFromState(t *testing.T) {
	smallPieces(t, 64<<10)
	data := pseudoBytes(4, 1<<20)
	s := &objectServer{versions: [][]byte{data}}
	u := startObjectServer(t, s)
	out := filepath.Join(t.TempDir(), "r.bin")
	// As a killed run leaves it: the first 600000 bytes, and garbage
	// beyond (never claimed).
	partial := append(append([]byte{}, data[:600000]...), bytes.Repeat([]byte{0xee}, len(data)-600000)...)
	os.WriteFile(out, partial, 0o644)
	st := &getState{URL: u + "/r.bin", ETag: `"v0"`, Size: int64(len(data)), Done: [][2]int64{{0, 600000}}}
	if err := saveState(out+stateSuffix, st); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runGetCmd(t, nil, u+"/r.bin", "-o", out, "-c", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	var res getResult
	json.Unmarshal([]byte(stdout), &res)
	if !bytes.Equal(got, data) || res.ResumedFrom != 600000 || res.Received != int64(len(data))-600000 {
		t.Fatalf("equal %v, result %+v", bytes.Equal(got, data), res)
	}
	if n := s.sent.Load(); n != int64(len(data))-600000 {
		t.Fatalf("server sent %d body bytes, want only the missing %d", n, len(data)-600000)
	}
	// The file shorter than the state says: start over.
	os.WriteFile(out, data[:1000], 0o644)
	saveState(out+stateSuffix, st)
	s.sent.Store(0)
	if code, _, stderr := runGetCmd(t, nil, u+"/r.bin", "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) || s.sent.Load() != int64(len(data)) {
		t.Fatalf("after a cut file: equal %v, %d bytes sent", bytes.Equal(got, data), s.sent.Load())
	}
}

// An interrupt (SIGINT cancels the context in main) leaves a state file
// that claims what is on disk, and the next run resumes from it.
func TestGetInterruptResume(t *testing.T) {
	smallPieces(t, 64<<10)
	data := pseudoBytes(6, 2<<20)
	s := &objectServer{versions: [][]byte{data}, delay: 20 * time.Millisecond}
	u := startObjectServer(t, s)
	out := filepath.Join(t.TempDir(), "i.bin")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"get", u + "/i.bin", "-o", out, "-c", "2"}, nil, &stdout, &stderr)
	}()
	sent := testenv.Poll(context.Background(), 60*time.Second, func() bool { return s.sent.Load() >= 512<<10 })
	cancel()
	code := <-done
	if !sent {
		t.Fatalf("the server never sent 512 KiB: %d bytes within 60s (exit %d, stderr %q)", s.sent.Load(), code, stderr.String())
	}
	if code != exitFailed || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	st, err := loadState(out + stateSuffix)
	// The server counts bytes handed to its socket; some of them may still
	// be in flight when the client stops, so the state claims less than
	// was sent, but never nothing and never everything.
	if err != nil || st == nil || st.spans().Total() == 0 || st.spans().Total() == int64(len(data)) {
		t.Fatalf("state after the interrupt: %+v, %v", st, err)
	}
	claimed := st.spans().Total()
	s.mu.Lock()
	s.delay = 0
	s.mu.Unlock()
	code, res, errs := runGetCmd(t, nil, u+"/i.bin", "-o", out, "-c", "2")
	var r getResult
	json.Unmarshal([]byte(res), &r)
	got, _ := os.ReadFile(out)
	if code != 0 || !bytes.Equal(got, data) || r.ResumedFrom != claimed {
		t.Fatalf("resume: exit %d, equal %v, result %+v, %d claimed; %s", code, bytes.Equal(got, data), r, claimed, errs)
	}
}
