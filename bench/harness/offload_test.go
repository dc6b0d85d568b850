package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/cache/policysim"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestOffloadScenarios: every scenario reports at least one window, and
// every window lies inside its trace and selects some requests (runOffload
// seeds as many objects as the largest id the traces name).
func TestOffloadScenarios(t *testing.T) {
	for _, sc := range offloadScenarios() {
		if len(sc.windows) == 0 {
			t.Errorf("%s: no window", sc.name)
		}
		for _, w := range sc.windows {
			if w.from < 0 || w.to > len(sc.trace) || w.from >= w.to {
				t.Errorf("%s, %s: window [%d, %d) outside %d requests", sc.name, w.label, w.from, w.to, len(sc.trace))
			}
			all := make([]bool, len(sc.trace))
			for i := range all {
				all[i] = true
			}
			if r := w.ratio(sc.trace, all); r != 1 {
				t.Errorf("%s, %s: selects no request", sc.name, w.label)
			}
		}
	}
}

func TestOffloadWindowRatio(t *testing.T) {
	tr := policysim.Trace{1, 2, 1, 3, 1}
	hit := []bool{false, false, true, false, true}
	if got := (offloadWindow{from: 0, to: 5}).ratio(tr, hit); got != 0.4 {
		t.Errorf("all: %v", got)
	}
	if got := (offloadWindow{from: 1, to: 5, keep: func(k int) bool { return k == 1 }}).ratio(tr, hit); got != 1 {
		t.Errorf("object 1 from request 1: %v", got)
	}
	if got := (offloadWindow{from: 3, to: 4, keep: func(k int) bool { return k == 1 }}).ratio(tr, hit); got != 0 {
		t.Errorf("empty selection: %v", got)
	}
}

// TestOffloadMarkdown renders a section from made-up runs: one row per
// window, one column per variant.
func TestOffloadMarkdown(t *testing.T) {
	scs := offloadScenarios()[:1]
	vs := []offloadVariant{{name: "a"}, {name: "b"}}
	hit := make([]bool, len(scs[0].trace))
	for i := 4000; i < 8000; i += 2 {
		hit[i] = true
	}
	md := offloadMarkdown(options{offloadSize: 256 << 10}, scs, vs, [][]offloadRun{{{hit: hit}, {hit: make([]bool, len(hit))}}})
	if !strings.Contains(md, "| second pass | ") || !strings.Contains(md, " 0.500 | 0.000 |") {
		t.Fatalf("section:\n%s", md)
	}
}

// TestReplayOffload replays a short trace through a stand-in cache (an
// HTTP server that keeps every object it fetched through the relay in a
// file under dir/cache) and checks the per-request hits, the origin bytes
// and the bytes held.
func TestReplayOffload(t *testing.T) {
	const size = 4 << 10
	body := bytes.Repeat([]byte{'x'}, size)
	originSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer originSrv.Close()
	org := &origin{MinIOServer: &testenv.MinIOServer{Endpoint: strings.TrimPrefix(originSrv.URL, "http://")}}

	v := offloadVariant{name: "stand-in", start: func(ctx context.Context, s *server, dir string) error {
		cacheDir := filepath.Join(dir, "cache")
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			path := filepath.Join(cacheDir, filepath.Base(r.URL.Path))
			if b, err := os.ReadFile(path); err == nil {
				w.Write(b)
				return
			}
			resp, err := http.Get("http://" + s.relay.Addr + r.URL.Path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			os.WriteFile(path, b, 0o644)
			w.Write(b)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		s.prefix = "/bench/"
		s.notes = []string{"stand-in"}
		return nil
	}}
	trace := policysim.Trace{0, 1, 0, 2, 1, 0}
	run, err := replayOffload(context.Background(), v, t.TempDir(), org, trace, size)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, true, false, true, true}; !slices.Equal(run.hit, want) {
		t.Errorf("hits %v, want %v", run.hit, want)
	}
	if run.originBytes < 3*size || run.originBytes > 3*size+3*1024 {
		t.Errorf("origin bytes %d, want 3 objects of %d and their headers", run.originBytes, size)
	}
	if run.heldMax != 3*size || run.notes != "stand-in" {
		t.Errorf("held %d bytes (want %d), notes %q", run.heldMax, 3*size, run.notes)
	}
}

func TestRecordedScenario(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.txt")
	os.WriteFile(path, []byte("# a comment\na.bin\nb.bin\n\na.bin\nc.bin\n  b.bin  \n"), 0o644)
	sc, err := recordedScenario(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := (policysim.Trace{100, 101, 100, 102, 101}); !slices.Equal(sc.trace, want) {
		t.Errorf("trace %v, want %v", sc.trace, want)
	}
	if w := sc.windows; len(w) != 1 || w[0].from != 2 || w[0].to != 5 {
		t.Errorf("windows %+v", w)
	}
	os.WriteFile(path, []byte("only\n"), 0o644)
	if _, err := recordedScenario(path, 0); err == nil {
		t.Error("a one-request trace was accepted")
	}
	if _, err := recordedScenario(filepath.Join(t.TempDir(), "missing"), 0); err == nil {
		t.Error("a missing file was accepted")
	}
}
