package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// tusServer is a small tus 1.0 server (creation, checksum sha256,
// concatenation) written for fault injection: it cuts connections, damages
// chunks, forgets uploads and slows down when told to. It checks what a
// client must send: Tus-Resumable, the offset, a valid Upload-Checksum.
type tusServer struct {
	mu       sync.Mutex
	uploads  map[string]*tusUpload
	seq      int
	patches  int
	noConcat bool
	maxSize  int64
	refuse   int   // status for every POST, when not 0
	maxChunk int64 // PATCH bodies above it get 413, when not 0
	lockedAt int   // the n-th PATCH gets 423 Locked with Retry-After: 1
	// cutEvery cuts every n-th PATCH after half its body (the server
	// keeps nothing of it); corruptEvery damages the n-th chunk on the
	// way (so its checksum fails: 460); loseAt forgets the upload the
	// n-th PATCH is for, answering 404.
	cutEvery, corruptEvery, loseAt int
	slow                           atomic.Bool
	received                       atomic.Int64 // PATCH body bytes stored
	active                         atomic.Int64 // PATCH handlers running
	violations                     []string
	auth                           []string
}

type tusUpload struct {
	length  int64
	data    []byte
	partial bool
	meta    map[string]string
	final   bool
}

func newTusServer() *tusServer { return &tusServer{uploads: map[string]*tusUpload{}} }

func (s *tusServer) violation(format string, a ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, a...))
}

func (s *tusServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", "1.0.0")
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if r.Method != http.MethodOptions && r.Header.Get("Tus-Resumable") != "1.0.0" {
		s.violation("%s without Tus-Resumable", r.Method)
	}
	s.mu.Unlock()
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Tus-Version", "1.0.0")
		ext := "creation,checksum,termination"
		if !s.noConcat {
			ext += ",concatenation"
		}
		w.Header().Set("Tus-Extension", ext)
		w.Header().Set("Tus-Checksum-Algorithm", "sha1,sha256")
		if s.maxSize > 0 {
			w.Header().Set("Tus-Max-Size", strconv.FormatInt(s.maxSize, 10))
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		s.create(w, r)
	case http.MethodHead:
		s.mu.Lock()
		up := s.uploads[strings.TrimPrefix(r.URL.Path, "/files/")]
		s.mu.Unlock()
		if up == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Upload-Offset", strconv.Itoa(len(up.data)))
		w.Header().Set("Upload-Length", strconv.FormatInt(up.length, 10))
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		s.patch(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *tusServer) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != 0 {
		w.WriteHeader(s.refuse)
		w.Write([]byte(`{"code":"upload_token_invalid","message":"no"}`))
		return
	}
	up := &tusUpload{meta: map[string]string{}}
	for _, kv := range strings.Split(r.Header.Get("Upload-Metadata"), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), " "); ok {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				s.violation("metadata %q not base64", kv)
			}
			up.meta[k] = string(b)
		}
	}
	cc := r.Header.Get("Upload-Concat")
	if parts, ok := strings.CutPrefix(cc, "final;"); ok {
		for _, u := range strings.Split(parts, " ") {
			id := u[strings.LastIndex(u, "/")+1:]
			p := s.uploads[id]
			if p == nil || !p.partial || int64(len(p.data)) != p.length {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			up.data = append(up.data, p.data...)
		}
		up.length, up.final = int64(len(up.data)), true
	} else {
		n, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		up.length, up.partial = n, cc == "partial"
	}
	s.seq++
	id := strconv.Itoa(s.seq)
	s.uploads[id] = up
	w.Header().Set("Location", "/files/"+id) // relative: resolved against the endpoint
	w.WriteHeader(http.StatusCreated)
}

func (s *tusServer) patch(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	id := strings.TrimPrefix(r.URL.Path, "/files/")
	s.mu.Lock()
	s.patches++
	n := s.patches
	up := s.uploads[id]
	if s.loseAt == n {
		delete(s.uploads, id)
		up = nil
	}
	cut, corrupt := s.cutEvery > 0 && n%s.cutEvery == 0, s.corruptEvery > 0 && n%s.corruptEvery == 0
	s.mu.Unlock()
	if up == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if n == s.lockedAt {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusLocked)
		return
	}
	if s.maxChunk > 0 && r.ContentLength > s.maxChunk {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		s.mu.Lock()
		s.violation("PATCH Content-Type %q", r.Header.Get("Content-Type"))
		s.mu.Unlock()
	}
	off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	s.mu.Lock()
	have := int64(len(up.data))
	s.mu.Unlock()
	if off != have {
		w.WriteHeader(http.StatusConflict)
		return
	}
	var body bytes.Buffer
	for {
		if cut && int64(body.Len()) >= r.ContentLength/2 {
			panic(http.ErrAbortHandler) // nothing of the chunk is kept
		}
		if _, err := io.CopyN(&body, r.Body, 64<<10); err != nil {
			break
		}
		if s.slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if int64(body.Len()) != r.ContentLength {
		return // the client went away: nothing is kept
	}
	chunk := body.Bytes()
	if corrupt && len(chunk) > 0 {
		chunk[len(chunk)/2] ^= 0xff
	}
	algo, sum, _ := strings.Cut(r.Header.Get("Upload-Checksum"), " ")
	want := sha256.Sum256(chunk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if algo != "sha256" || sum != base64.StdEncoding.EncodeToString(want[:]) {
		if !corrupt {
			s.violation("PATCH Upload-Checksum %q does not match its body", r.Header.Get("Upload-Checksum"))
		}
		w.WriteHeader(460)
		return
	}
	if int64(len(up.data)+len(chunk)) > up.length {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	up.data = append(up.data, chunk...)
	s.received.Add(int64(len(chunk)))
	w.Header().Set("Upload-Offset", strconv.Itoa(len(up.data)))
	w.WriteHeader(http.StatusNoContent)
}

// completed returns the upload that holds the whole file with its
// metadata: the final one, or the single one.
func (s *tusServer) completed(t *testing.T, url string) *tusUpload {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) > 0 {
		t.Fatalf("protocol violations: %q", s.violations)
	}
	up := s.uploads[url[strings.LastIndex(url, "/")+1:]]
	if up == nil {
		t.Fatalf("no upload at %s", url)
	}
	return up
}

func runPutCmd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"put"}, args...), env, &out, &errb)
	return code, out.String(), errb.String()
}

func smallChunks(t *testing.T) {
	oc, op, ob, om := putChunk, putMinPart, getBackoff, putMinChunk
	putChunk, putMinPart, getBackoff, putMinChunk = 64<<10, 256<<10, time.Millisecond, 4<<10
	t.Cleanup(func() { putChunk, putMinPart, getBackoff, putMinChunk = oc, op, ob, om })
}

func TestPutFaults(t *testing.T) {
	smallChunks(t)
	data := pseudoBytes(9, 1<<20+4321)
	src := writeTemp(t, "movie file.mkv", data)
	for _, tc := range []struct {
		name  string
		srv   *tusServer
		args  []string
		parts int
	}{
		{"4 partial uploads, cut connections and damaged chunks retried", &tusServer{cutEvery: 5, corruptEvery: 7}, []string{"-c", "4"}, 4},
		{"no concatenation: one upload", &tusServer{noConcat: true, cutEvery: 4}, []string{"-c", "4"}, 1},
		{"one connection", &tusServer{}, []string{"-c", "1"}, 1},
		{"423 Locked (the server still holds a dead request's lock): waits and retries", &tusServer{lockedAt: 2}, []string{"-c", "1"}, 1},
		{"PATCH bodies limited by the server (413): smaller chunks", &tusServer{maxChunk: 20000}, []string{"-c", "2"}, 2},
		{"upload forgotten by the server: created anew", &tusServer{loseAt: 6}, []string{"-c", "2"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.srv.uploads = map[string]*tusUpload{}
			srv := httptest.NewServer(tc.srv)
			t.Cleanup(srv.Close)
			state := filepath.Join(t.TempDir(), "state.json")
			code, stdout, stderr := runPutCmd(t, []string{"EDGECTL_UPLOAD_URL=" + srv.URL + "/files/"},
				append([]string{src, "-state", state}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var res putResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Parts != tc.parts || res.SHA256 != hexSHA(data) || res.Size != int64(len(data)) {
				t.Fatalf("stdout %q (%v), want %d parts", stdout, err, tc.parts)
			}
			up := tc.srv.completed(t, res.URL)
			if !bytes.Equal(up.data, data) || int64(len(up.data)) != up.length {
				t.Fatalf("server holds %d bytes (length %d), want the file's %d", len(up.data), up.length, len(data))
			}
			if up.meta["sha256"] != hexSHA(data) || up.meta["filename"] != "movie file.mkv" || up.meta["filetype"] == "" {
				t.Fatalf("metadata %v", up.meta)
			}
			tc.srv.mu.Lock()
			for id, p := range tc.srv.uploads {
				if p.partial && (p.meta["sha256"] != "" || p.meta["filename"] != "movie file.mkv") {
					t.Errorf("partial upload %s has metadata %v: want the name, not the whole file's sha256", id, p.meta)
				}
			}
			tc.srv.mu.Unlock()
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Fatalf("state file left: %v", err)
			}
		})
	}
}

func TestPutRefusals(t *testing.T) {
	smallChunks(t)
	src := writeTemp(t, "a.bin", pseudoBytes(1, 300000))
	const token = "upl-SECRET-TOKEN-42"
	s := &tusServer{uploads: map[string]*tusUpload{}, refuse: http.StatusUnauthorized}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	state := filepath.Join(t.TempDir(), "s.json")
	code, stdout, stderr := runPutCmd(t, nil, src, "-url", srv.URL+"/files/?token="+token, "-state", state)
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "upload_token_invalid") || strings.Contains(stderr, token) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, a := range s.auth[1:] { // OPTIONS, then POST: the query token went to the header
		if a != "Bearer "+token {
			t.Fatalf("Authorization %q", a)
		}
	}
	s.refuse, s.maxSize = 0, 1000
	code, _, stderr = runPutCmd(t, []string{"EDGECTL_UPLOAD_TOKEN=" + token}, src, "-url", srv.URL+"/files/", "-state", state)
	if code != exitFailed || !strings.Contains(stderr, "Tus-Max-Size") || strings.Contains(stderr, token) {
		t.Fatalf("too large: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{}, {src}, {src, "-url", "ftp://x/"}, {src, "-url", srv.URL, "-c", "0"}, {src, src, "-url", srv.URL}} {
		if code, _, stderr := runPutCmd(t, nil, args...); code != 2 || !strings.Contains(stderr, "usage: edgectl put") {
			t.Errorf("put %v: exit %d, %q", args, code, stderr)
		}
	}
	if code, _, stderr := runPutCmd(t, nil, filepath.Join(t.TempDir(), "missing"), "-url", srv.URL, "-state", state); code != exitLocal {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
}

// The real binary killed with SIGKILL in the middle of an upload resumes
// from the offsets the server holds: it sends far less than the file again.
func TestPutKill9Resume(t *testing.T) {
	bin := buildEdgectl(t)
	const size = 48 << 20 // three partial uploads of 16 MiB, chunks of 4 MiB
	data := pseudoBytes(5, size)
	src := writeTemp(t, "big.bin", data)
	s := newTusServer()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	state := filepath.Join(t.TempDir(), "put.json")
	env := []string{"EDGECTL_UPLOAD_URL=" + srv.URL + "/files/", "EDGECTL_UPLOAD_TOKEN=tok-secret-123"}
	s.slow.Store(true)
	cmd := exec.Command(bin, "put", src, "-c", "4", "-state", state)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitBeforeKill(t, cmd, exited, 90*time.Second, "the server to hold 16 MiB", func() bool { return s.received.Load() >= 16<<20 })
	cmd.Process.Kill()
	<-exited
	// Chunks whose bodies were read whole before the kill may still be
	// stored: wait for the handlers to finish.
	testenv.WaitFor(t, 90*time.Second, "the upload handlers to finish", func() bool { return s.active.Load() == 0 })
	held := s.received.Load()
	if held >= size {
		t.Fatalf("killed after the whole file arrived")
	}
	raw, err := os.ReadFile(state)
	if err != nil || strings.Contains(string(raw), "tok-secret-123") {
		t.Fatalf("state after kill: %q, %v", raw, err)
	}
	s.slow.Store(false)
	code, stdout, stderr := runBinary(t, bin, env, "put", src, "-c", "4", "-state", state)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	var res putResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Parts != 3 {
		t.Fatalf("stdout %q (%v)", stdout, err)
	}
	if !bytes.Equal(s.completed(t, res.URL).data, data) {
		t.Fatal("the final upload differs from the file")
	}
	if res.Sent != size-held || s.received.Load() != size {
		t.Fatalf("resume sent %d bytes; the server held %d of %d and stored %d in all", res.Sent, held, size, s.received.Load())
	}
}

// An empty file is one upload of length 0; a state file left for another
// version of FILE (size or modification time changed) is not resumed.
func TestPutEmptyAndChangedFile(t *testing.T) {
	smallChunks(t)
	s := newTusServer()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	env := []string{"EDGECTL_UPLOAD_URL=" + srv.URL + "/files/"}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	code, stdout, stderr := runPutCmd(t, env, empty, "-state", filepath.Join(dir, "e.json"))
	var res putResult
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.Size != 0 || res.Parts != 1 {
		t.Fatalf("empty: exit %d, %q, %s", code, stdout, stderr)
	}
	if up := s.completed(t, res.URL); up.length != 0 || up.meta["sha256"] != hexSHA(nil) {
		t.Fatalf("empty upload %+v", up)
	}
	// A stale state: same path, but the file changed since.
	src := writeTemp(t, "c.bin", pseudoBytes(7, 500000))
	abs, _ := filepath.Abs(src)
	state := filepath.Join(dir, "c.json")
	stale := &putState{Endpoint: srv.URL + "/files/", File: abs, Size: 400000, ModTime: 1, SHA256: hexSHA(nil),
		Parts: []putPart{{Off: 0, Len: 400000, URL: srv.URL + "/files/999"}}}
	if err := savePutState(state, stale); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runPutCmd(t, env, src, "-state", state)
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.SHA256 != hexSHA(pseudoBytes(7, 500000)) {
		t.Fatalf("changed file: exit %d, %q, %s", code, stdout, stderr)
	}
	if !bytes.Equal(s.completed(t, res.URL).data, pseudoBytes(7, 500000)) {
		t.Fatal("uploaded bytes differ")
	}
}
