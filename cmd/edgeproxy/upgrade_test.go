package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

var listeningRE = regexp.MustCompile(`"msg":"edgeproxy listening".*?"addr":"([0-9.:]+)","pid":([0-9]+)`)

// fileLog is a process's stderr in a file: the new binary of an upgrade
// inherits it, so a pipe would keep the old process's Wait from returning.
type fileLog struct{ path string }

func (f fileLog) String() string {
	b, _ := os.ReadFile(f.path)
	return string(b)
}

// listening returns the (addr, pid) pairs the log announced, in order.
func (f fileLog) listening() [][2]string {
	var out [][2]string
	for _, m := range listeningRE.FindAllStringSubmatch(f.String(), -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// TestUpgradeHandsOverWithoutFailures runs the real binary A under a
// stream of short requests and with long downloads in flight, replaces
// the executable and sends SIGUSR2: binary B takes the listener over, A
// drains and exits. No request fails, every long download completes
// byte-exact, and B serves afterwards.
func TestUpgradeHandsOverWithoutFailures(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "edgeproxy")
	copyFile(t, binary(t), bin)
	root := filepath.Join(dir, "origin")
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	small := []byte("small object\n")
	big := make([]byte, 24<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	bigSum := sha256.Sum256(big)
	for name, data := range map[string][]byte{"small": small, "big": big} {
		if err := os.WriteFile(filepath.Join(root, "b", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	yaml := "proxy:\n  listen: 127.0.0.1:0\n  download_bucket: b\n  drain_timeout: 60s\n  access_log: false\n" +
		"origin:\n  kind: dir\n  dir:\n    root: " + root + "\n" +
		"cache:\n  memory_bytes: 64MiB\n  disk_dir: \"\"\n" +
		"admin:\n  listen: \"off\"\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := fileLog{filepath.Join(dir, "stderr.log")}
	lf, err := os.Create(logs.path)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	a := exec.Command(bin, "-config", cfgPath, "-pidfile", filepath.Join(dir, "pid"))
	a.Env = cleanEnv()
	a.Stderr, a.Stdout = lf, lf
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	aDone := make(chan error, 1)
	go func() { aDone <- a.Wait() }()
	t.Cleanup(func() {
		a.Process.Kill()
		<-aDone
		// B is A's child, reparented when A exits: end it by its own pid.
		for _, l := range logs.listening() {
			if pid, _ := strconv.Atoi(l[1]); pid != 0 && pid != a.Process.Pid {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return len(logs.listening()) == 1 }) {
		t.Fatalf("A did not start:\n%s", logs)
	}
	addr := logs.listening()[0][0]
	base := "http://" + addr + "/download/"

	// Short requests: half on keep-alive connections, half one connection each.
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	note := func(err error) {
		failed.Add(1)
		errMu.Lock()
		if len(errs) < 5 {
			errs = append(errs, err.Error())
		}
		errMu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		tr := &http.Transport{DisableKeepAlives: w%2 == 1}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", base+"small", nil)
				if err := fetch(c, req, small); err != nil {
					note(err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// Long downloads, read slowly so that they span the hand-over.
	var handedOver atomic.Int64 // unix nanos when A logged the hand-over
	var longDone atomic.Int64
	var longAfter atomic.Int64 // long downloads that finished after it
	const longN = 4
	var started sync.WaitGroup
	started.Add(longN)
	for range longN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			first := func() { once.Do(started.Done) }
			defer first()
			resp, err := http.Get(base + "big")
			if err != nil {
				note(err)
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			var n int64
			for {
				m, err := resp.Body.Read(buf)
				h.Write(buf[:m])
				n += int64(m)
				if n > 0 {
					first()
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					note(fmt.Errorf("long download cut after %d bytes: %w", n, err))
					return
				}
				if ho := handedOver.Load(); ho == 0 || time.Now().UnixNano() < ho+int64(time.Second) {
					// About 2.6 MB/s (9 s for the whole object) until a
					// second after the hand-over, so that A drains for
					// that long; full speed after it.
					time.Sleep(25 * time.Millisecond)
				}
			}
			if resp.StatusCode != 200 || n != int64(len(big)) || !bytes.Equal(h.Sum(nil), bigSum[:]) {
				note(fmt.Errorf("long download: status %d, %d bytes, digest mismatch", resp.StatusCode, n))
				return
			}
			longDone.Add(1)
			if ho := handedOver.Load(); ho != 0 && time.Now().UnixNano() > ho {
				longAfter.Add(1)
			}
		}()
	}
	started.Wait()
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return ok.Load() > 100 }) {
		t.Fatalf("no load: %d ok, %d failed %v", ok.Load(), failed.Load(), errs)
	}

	// The upgrade: a new executable in place, then SIGUSR2.
	copyFile(t, binary(t), bin)
	began := time.Now()
	a.Process.Signal(syscall.SIGUSR2)
	if !testenv.Poll(context.Background(), 60*time.Second, func() bool { return len(logs.listening()) == 2 }) {
		t.Fatalf("B did not start:\n%s", logs)
	}
	bPid := logs.listening()[1][1]
	if bPid == strconv.Itoa(a.Process.Pid) || logs.listening()[1][0] != addr {
		t.Fatalf("B announced %v, want a new pid on %s", logs.listening()[1], addr)
	}
	if !testenv.Poll(context.Background(), 60*time.Second, func() bool { return bytes.Contains([]byte(logs.String()), []byte("new process is ready")) }) {
		t.Fatalf("A did not hand over:\n%s", logs)
	}
	handedOver.Store(time.Now().UnixNano())
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatalf("A exited with %v:\n%s", err, logs)
		}
		aDone <- nil
	case <-time.After(90 * time.Second):
		t.Fatalf("A did not exit after draining:\n%s", logs)
	}
	drained := time.Since(began)
	before := ok.Load()
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool { return ok.Load() > before+200 }) {
		t.Fatalf("B does not serve: %d ok, %d failed %v", ok.Load(), failed.Load(), errs)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed across the upgrade: %v\n%s", n, errs, logs)
	}
	if longDone.Load() != longN {
		t.Fatalf("%d of %d long downloads completed", longDone.Load(), longN)
	}
	if longAfter.Load() == 0 {
		t.Errorf("no long download was still in flight at the hand-over: the test did not test draining")
	}
	pid, _ := os.ReadFile(filepath.Join(dir, "pid"))
	if string(bytes.TrimSpace(pid)) != bPid {
		t.Errorf("pidfile holds %q, want B's pid %s", pid, bPid)
	}
	t.Logf("upgrade under load: %d short requests, %d long downloads (%d finished by A after the hand-over), 0 failed; A exited %v after SIGUSR2",
		ok.Load(), longN, longAfter.Load(), drained.Round(time.Millisecond))
}

// copyFile replaces dst with src's bytes (a new inode, as an install does).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
