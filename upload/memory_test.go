package upload_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/upload"
)

// genReader yields n deterministic pseudo-random bytes without holding
// them: the uploads' source, so that the test's own memory stays flat.
type genReader struct {
	r   *rand.PCG
	n   int64
	buf [8]byte
	k   int
}

func newGen(n int64) *genReader { return &genReader{r: rand.NewPCG(42, 43), n: n, k: 8} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	i := 0
	for ; i < len(p) && g.k < 8; i++ { // the rest of the last word
		p[i] = g.buf[g.k]
		g.k++
	}
	for ; i+8 <= len(p); i += 8 { // whole words, the same bytes in the same order
		binary.LittleEndian.PutUint64(p[i:], g.r.Uint64())
	}
	for ; i < len(p); i++ {
		if g.k == 8 {
			v := g.r.Uint64()
			for j := range 8 {
				g.buf[j] = byte(v >> (8 * j))
			}
			g.k = 0
		}
		p[i] = g.buf[g.k]
		g.k++
	}
	g.n -= int64(len(p))
	return len(p), nil
}

// TestTusMemoryBounded: 20 concurrent 64 MiB uploads, each one streamed
// PATCH, keep the process's heap far below what they carry (1.25 GiB):
// bytes go client -> 256 KiB buffer -> part file -> S3, never into memory
// whole. The bound, 96 MiB over the heap before the uploads, is what 20
// uploads' buffers (copy buffer, fasthttp and minio-go connection buffers)
// may take with garbage not yet collected; buffering parts in memory alone
// would take 20 x 5 MiB, a whole PATCH 1.25 GiB.
func TestTusMemoryBounded(t *testing.T) {
	const uploads, size = 20, 64 << 20
	e := newEnv(t)
	cfg := e.config()
	n := e.node(cfg)
	h := sha256.New()
	io.Copy(h, newGen(size))
	sum := hex.EncodeToString(h.Sum(nil))

	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(samples)
	base := samples[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	start := time.Now()
	for i := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := e.token(n.Uploads, upload.Grant{Key: fmt.Sprintf("mem/%d", i), FileID: fmt.Sprintf("mem-%d", i)})
			url := n.URL + create(t, n, tok, size, "Upload-Metadata", meta("sha256", sum))
			resp, body := tusReq(t, "PATCH", url, tok, newGen(size), "Upload-Offset", "0", "Content-Length", fmt.Sprint(size))
			if resp.StatusCode != 204 {
				errs <- fmt.Errorf("upload %d: %d %s", i, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("%d x %d MiB in %v (%.0f MiB/s): heap %d MiB before, peak %d MiB (+%d MiB)", uploads, size>>20, elapsed.Round(time.Millisecond),
		float64(uploads*size>>20)/elapsed.Seconds(), base>>20, peak.Load()>>20, growth>>20)
	if growth > 96<<20 {
		t.Errorf("heap grew by %d MiB during the uploads, want at most 96 MiB", growth>>20)
	}
	for i := range uploads {
		if status, got := download(t, n, fmt.Sprintf("mem-%d", i)); status != 200 || got != sum {
			t.Fatalf("upload %d: download %d %s", i, status, got)
		}
	}
	e.wantClean()
}

// TestGenReaderSplits: the generator yields the same bytes whatever the
// sizes of the reads (uploads and the sums they are checked against read
// it differently).
func TestGenReaderSplits(t *testing.T) {
	const n = 1000
	want := make([]byte, n)
	if _, err := io.ReadFull(newGen(n), want); err != nil {
		t.Fatal(err)
	}
	g := newGen(n)
	var got []byte
	for i := 1; len(got) < n; i++ {
		b := make([]byte, i%13)
		k, err := g.Read(b)
		got = append(got, b[:k]...)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("reads of different sizes gave different bytes")
	}
	if k, err := g.Read(make([]byte, 8)); k != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", k, err)
	}
}
