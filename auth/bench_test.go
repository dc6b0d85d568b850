package auth

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func benchVerifier(b *testing.B, cacheTTL time.Duration) (*Verifier, string) {
	c := testenv.Redis(b).Client(b)
	v, err := New(Config{KeyPrefix: b.Name() + ":", RevokeChannel: b.Name() + ":revoked", CacheTTL: cacheTTL, Budget: time.Second}, c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	tok, _, err := v.Create(context.Background(), TokenSpec{FileID: "f", AllowedIP: []string{"10.0.0.0/8"}})
	if err != nil {
		b.Fatal(err)
	}
	return v, tok
}

// How much does a cache hit cost the request path?
func BenchmarkVerifyCached(b *testing.B) {
	v, tok := benchVerifier(b, time.Hour)
	ip := netip.MustParseAddr("10.1.2.3")
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok, "f", ip); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok, "f", ip); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// And a miss, one Redis round trip on loopback?
func BenchmarkVerifyRedis(b *testing.B) {
	v, tok := benchVerifier(b, -1)
	ip := netip.MustParseAddr("10.1.2.3")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok, "f", ip); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSignerVerify(b *testing.B) {
	s := newTestSigner(b, true)
	now := time.Unix(1_800_000_000, 0)
	q, err := s.Sign("GET", "files.example.com", "/d/10086/a.iso", now.Add(time.Hour), "10.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	p := splitSigned(b, q)
	exp, kid, sig := []byte(p.expires), []byte(p.kid), []byte(p.sig)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Verify("GET", "files.example.com", "/d/10086/a.iso", exp, kid, sig, "10.0.0.1", now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// How long does a revocation take to reach another edge's cache? The tests
// allow seconds so they hold on a loaded machine; this measures it (ns/op
// is the time from Revoke to the entry leaving the second cache).
func BenchmarkRevokePropagation(b *testing.B) {
	addr := testenv.Redis(b).Addr
	cfg := Config{KeyPrefix: b.Name() + ":", RevokeChannel: b.Name() + ":revoked", CacheTTL: time.Hour, Budget: time.Second}
	newV := func() *Verifier {
		c := testenv.RedisClient(b, addr)
		v, err := New(cfg, c, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { v.Close() })
		<-v.Ready()
		return v
	}
	v1, v2 := newV(), newV()
	ctx := context.Background()
	ip := netip.MustParseAddr("10.1.2.3")
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tok, _, err := v1.Create(ctx, TokenSpec{FileID: "f"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v2.Verify(ctx, tok, "f", ip); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := v1.Revoke(ctx, tok); err != nil {
			b.Fatal(err)
		}
		for {
			if _, ok := v2.cache.Peek(tok); !ok {
				break
			}
			runtime.Gosched()
		}
	}
}
