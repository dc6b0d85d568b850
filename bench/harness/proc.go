package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// proc is one server child process: testenv's Process (own process group,
// log file, stop in order) plus what the harness measures of it.
type proc struct{ *testenv.Process }

// startProc starts bin with args, its output appended to logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	p, err := testenv.StartProcess(name, logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	return &proc{p}, nil
}

// stop ends the whole process group; it is safe on a nil proc.
func (p *proc) stop() {
	if p != nil {
		p.Stop()
	}
}

// memory is the resident memory of a process tree, from /proc.
type memory struct {
	RSS, HWM int64 // bytes: VmRSS and VmHWM summed over the processes
	// File is the file-backed part of RSS (RssFile): the executable and
	// libraries, and for edgeproxy the pages of mapped chunk files it has
	// sent from (page cache, clean and reclaimable).
	File  int64
	Procs int
}

// treeMemory sums VmRSS and VmHWM over p and all its descendants (nginx
// master and workers, Varnish manager and cache child). The sum of peaks
// overstates the peak of the sum when processes peaked at different times.
func (p *proc) treeMemory() (memory, error) {
	if p.Exited() {
		return memory{}, fmt.Errorf("harness: %s has exited", p.Name)
	}
	var m memory
	for pid := range descendants(p.Pid()) {
		st, err := procStatus(pid)
		if err != nil {
			continue // exited meanwhile
		}
		m.RSS += st.RSS
		m.HWM += st.HWM
		m.File += st.File
		m.Procs++
	}
	if m.Procs == 0 {
		return m, fmt.Errorf("harness: %s: no process found in /proc", p.Name)
	}
	return m, nil
}

// sampleMemory is treeMemory for the report's samples: RSS and HWM of -1
// when the tree cannot be read, so a sample shows as such instead of
// failing the run.
func (p *proc) sampleMemory() memory {
	m, err := p.treeMemory()
	if err != nil {
		return memory{RSS: -1, HWM: -1}
	}
	return m
}

// procStat is what the harness reads of /proc/<pid>/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system time of all its threads
}

// readStat parses /proc/<pid>/stat.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: f[0] is field 3 (state) of proc(5).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	// Clock ticks are USER_HZ, 100 per second on every Linux build we run.
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * 10 * time.Millisecond}, true
}

// descendants returns root and every process whose parent chain reaches
// it, with their stat.
func descendants(root int) map[int]procStat {
	all := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			all[pid] = st
		}
	}
	out := map[int]procStat{}
	if st, ok := all[root]; ok {
		out[root] = st
	}
	for pid, st := range all {
		for q, n := st.ppid, 0; q > 1 && n < 64; q, n = all[q].ppid, n+1 {
			if q == root {
				out[pid] = st
				break
			}
		}
	}
	return out
}

// cpuTime is the CPU time used so far by p and its descendants. It lets a
// run be judged by work done per CPU second, which other load on the
// machine disturbs less than work done per wall-clock second.
func (p *proc) cpuTime() time.Duration {
	var d time.Duration
	for _, st := range descendants(p.Pid()) {
		d += st.cpu
	}
	return d
}

// procStatus reads VmRSS, VmHWM and RssFile of one process, in bytes.
func procStatus(pid int) (memory, error) {
	var m memory
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM" && k != "RssFile") {
			continue
		}
		fs := strings.Fields(v) // "1234 kB"
		if len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.HWM = n << 10
		default:
			m.File = n << 10
		}
	}
	return m, sc.Err()
}

// sampleEvery calls f now and then every d in a goroutine of its own
// until stop is called. stop returns once f has returned for the last
// time, so what f writes may be read after it without a lock; calling
// stop again does nothing.
func sampleEvery(d time.Duration, f func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			f()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(quit)
		<-done
	})
}

// canDial reports whether addr accepts TCP connections.
func canDial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// runCmd runs a short command to completion within timeout and returns its
// combined output.
func runCmd(ctx context.Context, timeout time.Duration, dir string, env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		return string(out), fmt.Errorf("harness: %s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
