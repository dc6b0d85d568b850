package testenv

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

func TestRedisStopStart(t *testing.T) {
	r := NewRedis(t)
	if line, err := tcpRoundTrip(r.Addr, []byte("PING\r\n")); err != nil || line != "+PONG" {
		t.Fatalf("PING = %q, %v", line, err)
	}
	r.Stop(t)
	if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("stopped redis still accepts connections on %s", r.Addr)
	}
	r.Start(t)
	if line, err := tcpRoundTrip(r.Addr, []byte("PING\r\n")); err != nil || line != "+PONG" {
		t.Fatalf("PING after restart = %q, %v", line, err)
	}
}

func TestSharedMinIO(t *testing.T) {
	s := MinIO(t)
	if MinIO(t) != s {
		t.Fatal("MinIO returned a second server in one binary")
	}
	b := s.NewBucket(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.PutObject(ctx, b, "k", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := c.StatObject(ctx, b, "k", minio.StatObjectOptions{})
	if err != nil || info.Size != 5 {
		t.Fatalf("stat = %+v, %v", info, err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(context.Background(), time.Minute, func() bool { n++; return n == 3 }) {
		t.Fatal("Poll gave up on a condition that held on the third call")
	}
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
	start := time.Now()
	if Poll(context.Background(), 50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Poll gave up after %v, before its 50ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Poll(ctx, time.Minute, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held after ctx ended")
	}
}

func TestStartRedisCore(t *testing.T) {
	r, err := StartRedis(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := NewRedisClient(r.Addr)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	r.Close()
	if !r.Proc.Exited() {
		t.Fatal("process still running after Close")
	}
	r.Close() // twice is fine
}
