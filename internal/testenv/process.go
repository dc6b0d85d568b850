package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is one server child process with its output appended to a log
// file. It runs in its own process group, so a Ctrl-C at the terminal
// reaches only the parent (which stops its servers in order) and Stop
// reaches every process the server forked (nginx workers, the Varnish
// child). Pdeathsig kills it if the parent dies without cleaning up.
//
// A stopped Process can be started again with the same command line, which
// is how tests simulate an outage on the same address.
type Process struct {
	Name    string   // for messages: "minio", "redis-server"
	Bin     string   // the executable
	Args    []string // its arguments
	Env     []string // added to the parent's environment
	LogPath string   // stdout and stderr are appended here
	// Cred, when set, runs the process as another user (PostgreSQL
	// refuses to run as root).
	Cred *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess starts bin with args as p would.
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	p := &Process{Name: name, Bin: bin, Args: args, Env: env, LogPath: logPath}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts the process unless it is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: %s log: %w", p.Name, err)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: p.Cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("testenv: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Pid is the process id of the running process (the group leader), or 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited reports whether the process is not running (never started,
// stopped, or ended on its own).
func (p *Process) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after 10 s, and
// waits for the leader to end. It is safe on a nil or stopped Process.
func (p *Process) Stop() {
	if p != nil {
		p.end(func(pgid int) { syscall.Kill(-pgid, syscall.SIGTERM) })
	}
}

// Kill ends the process group with SIGKILL, as a crash or a power cut
// would: no goodbye to clients, connections reset mid-body.
func (p *Process) Kill() {
	p.end(func(pgid int) { syscall.Kill(-pgid, syscall.SIGKILL) })
}

// Shutdown sends sig to the leader alone, for a server that ends its
// children itself and gives signals their own meaning (PostgreSQL: SIGINT
// a fast shutdown, SIGQUIT an immediate one, as a crash); after 10 s the
// group is killed as by Stop.
func (p *Process) Shutdown(sig syscall.Signal) {
	p.end(func(pgid int) { syscall.Kill(pgid, sig) })
}

func (p *Process) end(signal func(pgid int)) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	signal(pgid)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	// Children that outlived the leader (rare) still belong to the group.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// LogTail returns the end of the process's log for failure messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// WaitReady polls ready until it reports true, the process exits, ctx ends
// or timeout passes; the error carries the log's tail.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func() bool) error {
	exited := false
	ok := poll(ctx, timeout, 20*time.Millisecond, 250*time.Millisecond, func() bool {
		if ready() {
			return true
		}
		exited = p.Exited()
		return exited
	})
	switch {
	case exited:
		return fmt.Errorf("testenv: %s exited during start:\n%s", p.Name, p.LogTail())
	case ok:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("testenv: %s start: %w", p.Name, ctx.Err())
	}
	return fmt.Errorf("testenv: %s not ready after %s:\n%s", p.Name, timeout, p.LogTail())
}
