package auth

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// startCluster starts a three-master Redis Cluster (no replicas) on free
// loopback ports, in the style of internal/testenv, and returns the node
// addresses. The servers are stopped when the test ends.
func startCluster(t *testing.T) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli: %v", err)
	}
	var addrs []string
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "redis.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", dir, "--protected-mode", "no", "--daemonize", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
		})
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		testenv.WaitFor(t, 10*time.Second, "cluster node "+addr, func() bool {
			c := testenv.NewRedisClient(addr, testenv.NoRetries)
			defer c.Close()
			return c.Ping(context.Background()).Err() == nil
		})
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		testenv.WaitFor(t, 15*time.Second, "cluster_state:ok on "+addr, func() bool {
			c := testenv.NewRedisClient(addr, testenv.NoRetries)
			defer c.Close()
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return addrs
}

func TestMaxUsesCluster(t *testing.T) {
	addrs := startCluster(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	testenv.WaitFor(t, 10*time.Second, "cluster client ready", func() bool {
		return c.ForEachShard(context.Background(), func(ctx context.Context, s *redis.Client) error {
			return s.Ping(ctx).Err()
		}) == nil
	})
	testMaxUses(t, c, testConfig(t))

	// Revocation and verification also work through the cluster client.
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.CacheTTL = time.Hour
	v1 := newTestVerifier(t, cfg, c)
	v2 := newTestVerifier(t, cfg, c)
	tok, _, err := v1.Create(ctx, TokenSpec{FileID: "f"})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, v1, v2)
	if _, err := v2.Verify(ctx, tok, "f", ipA); err != nil {
		t.Fatal(err)
	}
	if _, ok := v2.cache.Peek(tok); !ok {
		t.Fatal("token not cached by the second verifier")
	}
	if err := v1.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "revocation through the cluster", func() bool {
		_, ok := v2.cache.Peek(tok)
		return !ok
	})
}
