package stats

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	b.StopTimer()
	// Dropped entries cost less than written ones: report them, so a
	// faster figure is not bought by dropping.
	s := r.Stats()
	b.ReportMetric(float64(s.DroppedLogEntries+s.ProgressDropped)/float64(b.N), "dropped/op")
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

// BenchmarkLogWrite: the CPU one download log entry costs the writer and
// Redis, written in batches of writeBatch as the background writer does:
// "script" is writeLog, "xadd" the pipelined XADD per entry it replaced,
// kept here as the reference. Reported per entry: client CPU of this
// process (cpu-ns/entry) and of the dedicated redis-server
// (redis-cpu-ns/entry, from INFO cpu).
func BenchmarkLogWrite(b *testing.B) {
	for _, mode := range []string{"script", "xadd"} {
		b.Run(mode, func(b *testing.B) {
			rdb := client(b, testenv.NewRedis(b).Addr)
			cfg := testConfig(b)
			cfg.DisableLog = true // the writer goroutine stays idle; the benchmark writes
			r := newTestRecorder(b, cfg, rdb)
			batch := logBatch(uniq(b), writeBatch)
			var buf logBuf
			ctx := context.Background()
			write := func() {
				if mode == "script" {
					if err := r.writeLog(ctx, &buf, batch); err != nil {
						b.Fatal(err)
					}
					return
				}
				pipe := rdb.Pipeline()
				for _, e := range batch {
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: cfg.LogStream, MaxLen: DefaultLogMaxLen, Approx: true,
						Values: []any{
							"time", e.at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), "node", cfg.NodeID,
							"task_id", e.taskID, "user_id", e.info.UserID, "file_id", e.info.FileID,
							"route", e.info.Route, "off", strconv.FormatInt(e.info.Off, 10),
							"len", strconv.FormatInt(e.info.N, 10), "bytes", strconv.FormatInt(e.bytes, 10),
							"status", "completed", "duration_ms", strconv.FormatInt(e.durMS, 10),
							"cache", e.info.CacheStatus, "client_ip", e.info.ClientIP,
						}})
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			write() // loads the script
			redis0, self0 := redisCPU(b, rdb), selfCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				write()
			}
			b.StopTimer()
			entries := float64(b.N * writeBatch)
			b.ReportMetric(float64(selfCPU()-self0)/entries, "cpu-ns/entry")
			b.ReportMetric(float64(redisCPU(b, rdb)-redis0)/entries, "redis-cpu-ns/entry")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// selfCPU is the CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time of the redis-server behind rdb so far.
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
