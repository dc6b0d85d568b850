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
	"syscall"
	"time"
)

// proc is one server child process. It runs in its own process group so that
// a Ctrl-C at the terminal reaches the harness only, and the harness stops
// the servers in order; Pdeathsig kills it if the harness dies without
// cleaning up.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startProc starts bin with args, its output appended to logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("harness: %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("harness: start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop signals the whole process group (nginx workers, the Varnish child)
// with SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader (rare) still belong to the group.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// logTail returns the end of the process's log for error messages.
func (p *proc) logTail() string {
	return fileTail(p.logPath, 1500)
}

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// waitReady polls ready every 100 ms until it reports true, the process
// exits, or timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("harness: %s exited during start:\n%s", p.name, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("harness: %s not ready after %v:\n%s", p.name, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// memory is the resident memory of a process tree, from /proc.
type memory struct {
	RSS, HWM int64 // bytes: VmRSS and VmHWM summed over the processes
	Procs    int
}

// treeMemory sums VmRSS and VmHWM over p and all its descendants (nginx
// master and workers, Varnish manager and cache child). The sum of peaks
// overstates the peak of the sum when processes peaked at different times.
func (p *proc) treeMemory() (memory, error) {
	if p.exited() {
		return memory{}, fmt.Errorf("harness: %s has exited", p.name)
	}
	var m memory
	for pid := range descendants(p.cmd.Process.Pid) {
		rss, hwm, err := procStatus(pid)
		if err != nil {
			continue // exited meanwhile
		}
		m.RSS += rss
		m.HWM += hwm
		m.Procs++
	}
	if m.Procs == 0 {
		return m, fmt.Errorf("harness: %s: no process found in /proc", p.name)
	}
	return m, nil
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
	for _, st := range descendants(p.cmd.Process.Pid) {
		d += st.cpu
	}
	return d
}

// procStatus reads VmRSS and VmHWM of one process, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
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
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, sc.Err()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("harness: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
