package limiter

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAdmitRelease is the per-request cost of admission with every
// check enabled (concurrency caps and a request rate that never refuses)
// over 1024 clients.
func BenchmarkAdmitRelease(b *testing.B) {
	l, err := New(Config{MaxConcurrentPerClient: 1 << 20, MaxConcurrent: 1 << 30, RequestRate: 1e9, RequestBurst: 1 << 30}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprint("10.0.", i/256, ".", i%256)
	}
	var seq atomic.Uint32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919))
		for pb.Next() {
			le, err := l.Admit(ids[i%len(ids)])
			if err != nil {
				b.Error(err)
				return
			}
			le.Release()
			i++
		}
	})
}

// BenchmarkShapeUnlimited is Shape on the fast path (no per-client rate,
// no node cap) plus a 32 KiB read: what every unshaped download pays.
func BenchmarkShapeUnlimited(b *testing.B) {
	l, err := New(Config{RateAfter: 1 << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	le, err := l.Admit("a")
	if err != nil {
		b.Fatal(err)
	}
	defer le.Release()
	b.ReportAllocs()
	b.SetBytes(32 << 10)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body := &zeroReader{}
		buf := make([]byte, 32<<10)
		for pb.Next() {
			r := l.Shape(body, le, 0)
			if _, err := r.Read(buf); err != nil {
				b.Error(err)
				return
			}
			if r != io.ReadCloser(body) {
				b.Error("body was wrapped")
				return
			}
		}
	})
}

// BenchmarkShapeSlice is the cost of one shaped 64 KiB slice (two bucket
// reservations, no actual wait): the overhead a limited download pays per
// slice, for comparison with BenchmarkShapeUnlimited.
func BenchmarkShapeSlice(b *testing.B) {
	l, err := New(Config{Rate: 1 << 50, GlobalRate: 1 << 50}, nil, WithSleep(func(ctx context.Context, d time.Duration) error { return nil }))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		le, err := l.Admit(fmt.Sprint(time.Now().UnixNano()))
		if err != nil {
			b.Error(err)
			return
		}
		defer le.Release()
		r := l.Shape(&zeroReader{}, le, 0)
		defer r.Close()
		buf := make([]byte, 64<<10)
		for pb.Next() {
			if _, err := r.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
