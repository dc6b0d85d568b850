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
