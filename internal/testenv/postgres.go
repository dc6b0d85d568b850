package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PostgresServer is a running PostgreSQL cluster on a loopback port, created
// with initdb in a temporary directory and removed when the test ends.
//
// initdb and postgres refuse to run as root, and the tests often run as
// root (containers, CI). When the test process is root, the servers run as
// the unprivileged user "postgres" (created by Debian's postgresql package;
// TESTENV_POSTGRES_USER overrides it) through SysProcAttr.Credential, in a
// temporary directory that user owns. As any other user they run as that
// user. The cluster trusts local connections: it listens on 127.0.0.1 only
// and its socket directory is inside the temporary directory.
type PostgresServer struct {
	// DSN connects as the superuser "postgres" to the database "postgres":
	// "postgres://postgres@127.0.0.1:port/postgres?sslmode=disable".
	DSN string
	// Addr is "127.0.0.1:port".
	Addr string

	proc *Process
}

// NewPostgres creates and starts a PostgreSQL cluster for this test alone;
// it is stopped and deleted when the test ends. Stop/Kill and Start
// simulate an outage on the same address with the data kept.
func NewPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	p, dir, err := startPostgres()
	if dir != "" {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.proc.Shutdown(syscall.SIGINT) })
	return p
}

// postgresBinDir finds the directory holding initdb and postgres:
// TESTENV_POSTGRES_BIN, then PATH, then Debian's /usr/lib/postgresql/*/bin
// (newest version first).
func postgresBinDir() (string, error) {
	if d := os.Getenv("TESTENV_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Often a symlink into the versioned directory, which also
		// holds postgres and pg_isready.
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "initdb")); err == nil && !st.IsDir() {
			return d, nil
		}
	}
	return "", fmt.Errorf("testenv: initdb not found (set TESTENV_POSTGRES_BIN, install Debian's postgresql package, or run scripts/test.sh which installs it)")
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// postgresCredential is who runs initdb and postgres: nil (the test's own
// user) unless the test runs as root.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("TESTENV_POSTGRES_USER")
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("testenv: tests run as root and PostgreSQL refuses root; user %q to run it as: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres runs initdb in a new temporary directory and starts the
// server. dir is returned (for removal) even with an error.
func startPostgres() (_ *PostgresServer, dir string, _ error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, "", err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, "", err
	}
	dir, err = os.MkdirTemp("", "edgeproxy-pg-")
	if err != nil {
		return nil, "", fmt.Errorf("testenv: postgres dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, dir, fmt.Errorf("testenv: postgres dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"--no-sync", "--encoding=UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, dir, fmt.Errorf("testenv: initdb: %w\n%s", err, out)
	}
	var last error
	for range 3 { // a freed port can be taken again before we bind it
		port, err := FreePort()
		if err != nil {
			return nil, dir, err
		}
		addr := "127.0.0.1:" + itoa(port)
		p := &PostgresServer{
			Addr: addr,
			DSN:  "postgres://postgres@" + addr + "/postgres?sslmode=disable",
		}
		p.proc = &Process{
			Name: "postgres",
			Bin:  filepath.Join(bin, "postgres"),
			// fsync off: the tests kill the server to test the client's
			// handling of it, not PostgreSQL's durability.
			Args: []string{"-D", data, "-p", itoa(port), "-c", "listen_addresses=127.0.0.1",
				"-c", "unix_socket_directories=" + dir, "-c", "fsync=off", "-c", "max_connections=100"},
			LogPath: filepath.Join(dir, "postgres.log"),
			Cred:    cred,
		}
		if last = p.start(); last == nil {
			return p, dir, nil
		}
		p.proc.Shutdown(syscall.SIGINT)
	}
	return nil, dir, last
}

func (p *PostgresServer) start() error {
	if err := p.proc.Start(); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(p.Addr)
	// Ready when it accepts a TCP connection and answers an SSLRequest
	// (8 bytes: length 8, code 80877103) with 'N' or 'S'; during recovery
	// it accepts connections but refuses them at startup, which the
	// clients retry.
	return p.proc.WaitReady(context.Background(), startTimeout, func() bool {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
			return false
		}
		b := make([]byte, 1)
		_, err = c.Read(b)
		if err != nil || (b[0] != 'N' && b[0] != 'S') {
			return false
		}
		// pg_isready (next to postgres) tells whether sessions are
		// accepted, not only TCP connections (crash recovery).
		isready := filepath.Join(filepath.Dir(p.proc.Bin), "pg_isready")
		return exec.Command(isready, "-q", "-h", host, "-p", port, "-U", "postgres", "-t", "2").Run() == nil
	})
}

// Stop shuts the server down (SIGINT: fast shutdown); the data is kept
// and Start brings it back on the same address.
func (p *PostgresServer) Stop(t testing.TB) {
	t.Helper()
	p.proc.Shutdown(syscall.SIGINT) // fast shutdown
}

// Kill ends the server as a crash would: SIGQUIT, PostgreSQL's immediate
// shutdown, which ends every session at once without a checkpoint; open
// transactions are lost, committed ones survive through crash recovery on
// Start. (SIGKILL of the postmaster alone would leave its backends, each a
// session leader of its own, holding the shared memory for a while, and
// the restart would fail.)
func (p *PostgresServer) Kill(t testing.TB) {
	t.Helper()
	p.proc.Shutdown(syscall.SIGQUIT) // immediate shutdown
}

// Start restarts a stopped or killed server on the same address.
func (p *PostgresServer) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
}
