package stats

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// BenchmarkAccess: the per-request cost of counting an access, with the
// background flush running against a real Redis.
func BenchmarkAccess(b *testing.B) {
	cfg := testConfig(b)
	cfg.FlushInterval = 0 // default 1s: flushes run during the benchmark
	r := newTestRecorder(b, cfg, client(b, testenv.Redis(b).Addr))
	u := uniq(b)
	files := make([]string, 1000)
	for i := range files {
		files[i] = fmt.Sprint(u, "-", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Access(files[i%len(files)])
			i += 7
		}
	})
}

// BenchmarkTransfer: the per-download cost of progress tracking and the
// log: StartTransfer, 16 Delivered calls of 64 KiB, Finish.
func BenchmarkTransfer(b *testing.B) {
	cfg := testConfig(b)
	cfg.ProgressInterval = 0
	r := newTestRecorder(b, cfg, client(b, testenv.Redis(b).Addr))
	u := uniq(b)
	tokens := make([]string, 4096)
	for i := range tokens {
		tokens[i] = fmt.Sprint("tok-", u, "-", i)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			tr := r.StartTransfer(TransferInfo{Token: tokens[i%int64(len(tokens))], FileID: "file",
				UserID: "user", Route: "dl", ClientIP: "127.0.0.1", CacheStatus: "HIT", N: 1 << 20, Total: 1 << 20})
			for range 16 {
				tr.Delivered(64 << 10)
			}
			tr.Finish(nil)
		}
	})
}

// BenchmarkDelivered: the cost of one Delivered call between marks.
func BenchmarkDelivered(b *testing.B) {
	r := newTestRecorder(b, testConfig(b), client(b, testenv.Redis(b).Addr))
	tr := r.StartTransfer(TransferInfo{Token: "t", FileID: uniq(b), N: 1 << 62, Total: 1 << 62})
	defer tr.Finish(nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Delivered(1)
		}
	})
}
