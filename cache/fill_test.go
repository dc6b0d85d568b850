package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
)

type openResult struct {
	data   []byte
	status string
	err    error
}

// openAndRead runs Open and a full read in a goroutine.
func openAndRead(ctx context.Context, c *Cache, key, etag string, n int64) <-chan openResult {
	out := make(chan openResult, 1)
	go func() {
		rc, err := c.Open(ctx, "b", key, etag, 0, n)
		if err != nil {
			out <- openResult{err: err}
			return
		}
		defer rc.Close()
		status := rc.(*Reader).CacheStatus()
		var buf bytes.Buffer
		_, err = rc.(io.WriterTo).WriteTo(&buf)
		out <- openResult{buf.Bytes(), status, err}
	}()
	return out
}

func receive(t *testing.T, ch <-chan openResult) openResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not finish")
		return openResult{}
	}
}

// TestCoalescedFill forces the interleaving: the first reader's fill is held
// inside the origin until seven more readers have joined it, then released.
// One origin request must serve all eight (groupcache's TestNoDedup shape).
func TestCoalescedFill(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(3<<10, 20)
	etag := o.put("b", "k", data)
	gate := make(chan struct{})
	o.gate = gate
	c := newTestCache(t, smallConfig(), o, nil)

	first := openAndRead(context.Background(), c, "k", etag, int64(len(data)))
	testenv.WaitFor(t, 10*time.Second, "the first fill to reach the origin", func() bool { return o.waiting.Load() == 1 })
	var rest []<-chan openResult
	for range 7 {
		rest = append(rest, openAndRead(context.Background(), c, "k", etag, int64(len(data))))
	}
	testenv.WaitFor(t, 10*time.Second, "7 readers to join the fill", func() bool { return c.Stats().CoalescedWaits == 7 })
	close(gate)
	for i, ch := range append(rest, first) {
		r := receive(t, ch)
		if r.err != nil || !bytes.Equal(r.data, data) || r.status != StatusMiss {
			t.Fatalf("reader %d: err %v, status %s, equal %v", i, r.err, r.status, bytes.Equal(r.data, data))
		}
	}
	if got := o.opens.Load(); got != 1 {
		t.Fatalf("origin requests %d, want 1", got)
	}
	if got := o.bytesRead.Load(); got != int64(len(data)) {
		t.Fatalf("origin bytes %d, want %d", got, len(data))
	}
	// Chunks that landed before a reader reached them count as memory hits.
	if st := c.Stats(); st.Fills != 1 || st.OriginBytes != int64(len(data)) || st.CoalescedWaits < 7 ||
		st.BytesFromOrigin+st.BytesFromMemory != 8*int64(len(data)) {
		t.Fatalf("stats %+v", st)
	}
}

// TestFillSurvivesFirstClient: the client that started a fill hangs up while
// the origin is stalled; the fill goes on and serves the reader who joined.
func TestFillSurvivesFirstClient(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(2<<10, 21)
	etag := o.put("b", "k", data)
	gate := make(chan struct{})
	o.gate = gate
	c := newTestCache(t, smallConfig(), o, nil)

	ctx, cancel := context.WithCancel(context.Background())
	first := openAndRead(ctx, c, "k", etag, int64(len(data)))
	testenv.WaitFor(t, 10*time.Second, "the fill to reach the origin", func() bool { return o.waiting.Load() == 1 })
	second := openAndRead(context.Background(), c, "k", etag, int64(len(data)))
	testenv.WaitFor(t, 10*time.Second, "the second reader to join", func() bool { return c.Stats().CoalescedWaits == 1 })
	cancel()
	if r := receive(t, first); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first reader: %v", r.err)
	}
	close(gate)
	if r := receive(t, second); r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("second reader: %v", r.err)
	}
	if got := o.opens.Load(); got != 1 {
		t.Fatalf("origin requests %d, want 1", got)
	}
}

// TestStreamingMiss: Open returns and the first chunk is readable while the
// origin is still holding back the rest of the window; a reader joining
// mid-fill gets the landed chunk at once.
func TestStreamingMiss(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(4<<10, 22) // one 4-chunk window
	etag := o.put("b", "k", data)
	bodyGate := make(chan struct{})
	o.bodyGate, o.bodyGateAfter = bodyGate, 1<<10
	c := newTestCache(t, smallConfig(), o, nil)

	readFirst := func() (*Reader, []byte) {
		rc, err := c.Open(context.Background(), "b", "k", etag, 0, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<10)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		return rc.(*Reader), buf
	}
	type res struct {
		r   *Reader
		buf []byte
	}
	got := make(chan res, 2)
	for range 2 {
		go func() {
			r, buf := readFirst()
			got <- res{r, buf}
		}()
	}
	var readers []*Reader
	for range 2 {
		select {
		case x := <-got:
			if !bytes.Equal(x.buf, data[:1<<10]) {
				t.Fatal("first chunk bytes")
			}
			readers = append(readers, x.r)
		case <-time.After(10 * time.Second):
			t.Fatal("first chunk not delivered while the rest of the window was pending")
		}
	}
	if o.opens.Load() != 1 {
		t.Fatalf("origin requests %d", o.opens.Load())
	}
	close(bodyGate)
	for _, r := range readers {
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(rest, data[1<<10:]) {
			t.Fatalf("rest: %v", err)
		}
		r.Close()
	}
}

// TestFillErrorReachesAllWaiters: an origin failure reaches the reader that
// started the fill and those who joined, and the next read retries.
func TestFillErrorReachesAllWaiters(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(2<<10, 23)
	etag := o.put("b", "k", data)
	gate := make(chan struct{})
	o.gate = gate
	o.openErr = origin.ErrUnavailable
	c := newTestCache(t, smallConfig(), o, nil)

	a := openAndRead(context.Background(), c, "k", etag, int64(len(data)))
	testenv.WaitFor(t, 10*time.Second, "fill at origin", func() bool { return o.waiting.Load() == 1 })
	b := openAndRead(context.Background(), c, "k", etag, int64(len(data)))
	testenv.WaitFor(t, 10*time.Second, "join", func() bool { return c.Stats().CoalescedWaits == 1 })
	close(gate)
	for _, ch := range []<-chan openResult{a, b} {
		if r := receive(t, ch); !errors.Is(r.err, origin.ErrUnavailable) {
			t.Fatalf("reader: %v", r.err)
		}
	}
	o.set(func(f *fakeOrigin) { f.openErr = nil })
	if got, _ := readAll(t, c, "b", "k"); !bytes.Equal(got, data) {
		t.Fatal("retry after failure")
	}
}

// TestFillTimeout: a stuck origin is cut off by FillTimeout and the error
// wraps origin.ErrTimeout.
func TestFillTimeout(t *testing.T) {
	o := newFakeOrigin()
	etag := o.put("b", "k", randomBytes(2<<10, 24))
	o.gate = make(chan struct{}) // never released
	cfg := smallConfig()
	cfg.FillTimeout = 50 * time.Millisecond
	c := newTestCache(t, cfg, o, nil)
	if _, err := c.Open(context.Background(), "b", "k", etag, 0, 2<<10); !errors.Is(err, origin.ErrTimeout) {
		t.Fatalf("Open: %v", err)
	}
}

// TestMidStreamError: an origin body that ends early fails the read (not
// Open, which already delivered the first chunk), and nothing of the short
// body past the complete chunks is cached.
func TestMidStreamError(t *testing.T) {
	o := newFakeOrigin()
	data := randomBytes(4<<10, 25)
	etag := o.put("b", "k", data)
	o.truncateAt = 1<<10 + 10
	c := newTestCache(t, smallConfig(), o, nil)
	rc, err := c.Open(context.Background(), "b", "k", etag, 0, 4<<10)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read of a short body: %v", err)
	}
	settle(t, c)
	id := c.meta.get("b", "k").id
	if c.memGet(id, 0) == nil || c.memGet(id, 1) != nil {
		t.Fatal("want chunk 0 cached and chunk 1 not")
	}
	o.set(func(f *fakeOrigin) { f.truncateAt = 0 })
	if got, status := readAll(t, c, "b", "k"); !bytes.Equal(got, data) || status != StatusPartial {
		t.Fatalf("retry: status %s", status)
	}
}

// TestFillMemoryBound: fills beyond fill_memory wait for a slot instead of
// all holding buffers at once.
func TestFillMemoryBound(t *testing.T) {
	o := newFakeOrigin()
	cfg := smallConfig()
	cfg.FillMemory = 4 << 10 // one window
	var etags []string
	for i := range 3 {
		etags = append(etags, o.put("b", string(rune('a'+i)), randomBytes(4<<10, uint64(30+i))))
	}
	gate := make(chan struct{})
	o.gate = gate
	c := newTestCache(t, cfg, o, nil)
	var res []<-chan openResult
	for i := range 3 {
		res = append(res, openAndRead(context.Background(), c, string(rune('a'+i)), etags[i], 4<<10))
	}
	testenv.WaitFor(t, 10*time.Second, "one fill at the origin", func() bool { return o.waiting.Load() == 1 })
	testenv.WaitFor(t, 10*time.Second, "all windows registered", func() bool { return c.Stats().InflightChunks == 12 })
	if got := o.waiting.Load(); got != 1 {
		t.Fatalf("%d fills at the origin at once, want 1", got)
	}
	close(gate)
	var wg sync.WaitGroup
	for _, ch := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := <-ch; r.err != nil {
				t.Error(r.err)
			}
		}()
	}
	wg.Wait()
}
