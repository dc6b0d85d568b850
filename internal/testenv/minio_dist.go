package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// distNodes is the size of the distributed MinIO: with 4 drives MinIO
// erasure-codes each object over all four with parity 2, so any one node
// (two, for reads) can be down and every object is still readable.
const distNodes = 4

// MinIOCluster is a distributed MinIO of four nodes on 127.0.0.2 to
// 127.0.0.5 (loopback aliases Linux routes without configuration), all on
// the same port, each with its own drive directory.
type MinIOCluster struct {
	// Endpoints are the nodes' host:port, plain HTTP.
	Endpoints []string
	AccessKey string
	SecretKey string
	nodes     []*Process
}

// NewMinIOCluster starts a 4-node distributed MinIO for this test alone,
// stopped when the test ends, and waits until every node answers a signed
// request.
func NewMinIOCluster(t testing.TB) *MinIOCluster {
	t.Helper()
	bin, err := MinIOBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var last error
	for range 3 {
		c, err := startCluster(bin, dir)
		if err == nil {
			t.Cleanup(c.stopAll)
			t.Cleanup(func() {
				if t.Failed() { // what the nodes said, for a failure under load
					for _, p := range c.nodes {
						t.Logf("%s log, last lines:\n%s", p.Name, p.LogTail())
					}
				}
			})
			return c
		}
		last = err
	}
	t.Fatal(last)
	return nil
}

func startCluster(bin, dir string) (*MinIOCluster, error) {
	port, err := freePortAll()
	if err != nil {
		return nil, err
	}
	cport, err := freePortAll()
	if err != nil {
		return nil, err
	}
	c := &MinIOCluster{AccessKey: "edgeproxy-test", SecretKey: "edgeproxy-test-secret"}
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	var drives []string
	for i := range distNodes {
		host := fmt.Sprintf("127.0.0.%d", i+2)
		c.Endpoints = append(c.Endpoints, net.JoinHostPort(host, itoa(port)))
		drive := filepath.Join(dir, run, fmt.Sprintf("n%d", i+1))
		if err := os.MkdirAll(drive, 0o755); err != nil {
			return nil, err
		}
		drives = append(drives, "http://"+c.Endpoints[i]+drive)
	}
	for i, ep := range c.Endpoints {
		host, _, _ := net.SplitHostPort(ep)
		args := append([]string{"server", "--quiet", "--address", ep,
			"--console-address", net.JoinHostPort(host, itoa(cport))}, drives...)
		c.nodes = append(c.nodes, &Process{
			Name: "minio-" + host,
			Bin:  bin,
			Args: args,
			Env: []string{
				"MINIO_ROOT_USER=" + c.AccessKey,
				"MINIO_ROOT_PASSWORD=" + c.SecretKey,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
				"MINIO_CI_CD=1",
				// MinIO refuses loopback hosts in what it takes for a
				// container unless told which endpoint is its own.
				"_MINIO_SERVER_LOCAL=" + ep,
			},
			LogPath: filepath.Join(dir, run, fmt.Sprintf("minio-n%d.log", i+1)),
		})
	}
	for _, p := range c.nodes {
		if err := p.Start(); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.waitNode(i); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	return c, nil
}

// freePortAll returns a port free on all four node addresses a moment ago.
func freePortAll() (int, error) {
	for range 20 {
		port, err := FreePort()
		if err != nil {
			return 0, err
		}
		ok := true
		for i := range distNodes {
			l, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i+2), itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("testenv: no port free on 127.0.0.2-%d", distNodes+1)
}

// waitNode waits until node i answers a signed request: a distributed
// MinIO serves requests only once enough drives have formatted and its
// users are loaded, seconds after its health endpoint first answers.
func (c *MinIOCluster) waitNode(i int) error {
	mc, err := minio.New(c.Endpoints[i], &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")})
	if err != nil {
		return fmt.Errorf("testenv: minio client: %w", err)
	}
	return c.nodes[i].WaitReady(context.Background(), startTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := mc.ListBuckets(ctx)
		return err == nil
	})
}

func (c *MinIOCluster) stopAll() {
	for _, p := range c.nodes {
		p.Stop()
	}
}

// Kill ends node i (0-3) with SIGKILL: no goodbye to clients, its
// connections are reset mid-body, as in a crash or a power cut.
func (c *MinIOCluster) Kill(t testing.TB, i int) {
	t.Helper()
	c.nodes[i].Kill()
}

// Restart starts a killed node again on the same address and drive and
// waits until it answers a signed request.
func (c *MinIOCluster) Restart(t testing.TB, i int) {
	t.Helper()
	if err := c.nodes[i].Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.waitNode(i); err != nil {
		t.Fatal(err)
	}
}

// Client returns a minio-go client for node i.
func (c *MinIOCluster) Client(t testing.TB, i int) *minio.Client {
	t.Helper()
	mc, err := minio.New(c.Endpoints[i], &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")})
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return mc
}

// String lists the endpoints, for failure messages.
func (c *MinIOCluster) String() string { return strings.Join(c.Endpoints, ",") }
