package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/valyala/fasthttp"
)

// refFileMask builds the body with fmt, as refMultipart does, and marks
// which of its bytes are file bytes: an independent account of where the
// parts' data lie.
func refFileMask(boundary, contentType string, spans []span, size int64) []bool {
	var b bytes.Buffer
	var mask []bool
	head := func(s string) {
		b.WriteString(s)
		for range len(s) {
			mask = append(mask, false)
		}
	}
	for i, s := range spans {
		if i > 0 {
			head("\r\n")
		}
		head(fmt.Sprintf("--%s\r\n", boundary))
		if contentType != "" {
			head(fmt.Sprintf("Content-Type: %s\r\n", contentType))
		}
		head(fmt.Sprintf("Content-Range: bytes %d-%d/%d\r\n\r\n", s.Start, s.Start+s.Length-1, size))
		for range s.Length {
			mask = append(mask, true)
		}
	}
	if len(spans) > 0 {
		head("\r\n")
	}
	head(fmt.Sprintf("--%s--\r\n", boundary))
	return mask
}

func countTrue(m []bool) int64 {
	var n int64
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// checkLayout compares multipartLayout and fileBytesIn with the reference
// mask for every prefix of the body.
func checkLayout(t *testing.T, boundary, ct string, spans []span, size int64) {
	t.Helper()
	mask := refFileMask(boundary, partContentType(ct), spans, size)
	if n := multipartLength(boundary, ct, spans, size); n != int64(len(mask)) {
		t.Fatalf("reference body %d bytes, multipartLength %d", len(mask), n)
	}
	layout := multipartLayout(boundary, ct, spans, size)
	if len(layout) != len(spans) {
		t.Fatalf("%d parts for %d spans", len(layout), len(spans))
	}
	for i, p := range layout {
		if p.span != spans[i] || !mask[p.bodyOff] || mask[p.bodyOff-1] {
			t.Fatalf("part %d: %+v is not where the body carries span %v", i, p, spans[i])
		}
		for k := p.bodyOff; k < p.bodyOff+p.span.Length; k++ {
			if !mask[k] {
				t.Fatalf("part %d: body byte %d is a header byte", i, k)
			}
		}
	}
	// Every split of the body into written slices adds up to the file
	// bytes of the prefix, however the writes fell.
	var want, got, prev int64
	for pos := int64(1); pos <= int64(len(mask)); pos++ {
		if mask[pos-1] {
			want++
		}
		if pos%7 == 0 || pos == int64(len(mask)) {
			got += fileBytesIn(layout, prev, pos)
			prev = pos
			if got != want {
				t.Fatalf("prefix %d: %d file bytes counted, want %d", pos, got, want)
			}
		}
	}
	if got != countTrue(mask) {
		t.Fatalf("whole body: %d file bytes, want %d", got, countTrue(mask))
	}
}

// TestMultipartLayout: the bytes of a multipart body that carry file data
// are exactly the parts' data, never the headers (issue 9, defect 5).
func TestMultipartLayout(t *testing.T) {
	checkLayout(t, "B", "text/plain", []span{{500000, 499998}, {999999, 1}}, 1000000)
	var one []span
	for i := range int64(32) {
		one = append(one, span{i * 90, 1})
	}
	checkLayout(t, "0123456789ABCDEFGHIJKLMNOP", "", one, 3000)
	checkLayout(t, "x", "a/b\r\nX-Injected: 1", []span{{0, 1}, {5, 5}}, 10)
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		size := 1 + r.Int64N(5000)
		var spans []span
		for start := r.Int64N(size); start < size && len(spans) < maxRanges; {
			n := 1 + r.Int64N(min(size-start, 100))
			spans = append(spans, span{start, n})
			start += n + 1 + r.Int64N(size/4+1)
		}
		checkLayout(t, newBoundary()[:1+r.IntN(26)], "application/octet-stream", spans, size)
	}
}

func FuzzFileBytesIn(f *testing.F) {
	f.Add(int64(1000), int64(0), int64(10), int64(500), int64(20), int64(5))
	f.Fuzz(func(t *testing.T, size, s1, n1, s2, n2 int64, cut int64) {
		if size <= 0 || size > 1<<20 || s1 < 0 || n1 <= 0 || s2 < 0 || n2 <= 0 || s1+n1 >= s2 || s2+n2 > size {
			return
		}
		spans := []span{{s1, n1}, {s2, n2}}
		layout := multipartLayout("bnd", "", spans, size)
		total := multipartLength("bnd", "", spans, size)
		cut = min(max(cut, 0), total)
		a, b := fileBytesIn(layout, 0, cut), fileBytesIn(layout, cut, total)
		if a < 0 || b < 0 || a+b != n1+n2 {
			t.Fatalf("split at %d of %d: %d + %d file bytes, want %d", cut, total, a, b, n1+n2)
		}
	})
}

// fakeTransfer records what trackedBody reports.
type fakeTransfer struct {
	delivered int64
	finished  int
	err       error
}

func (f *fakeTransfer) Delivered(n int64) { f.delivered += n }
func (f *fakeTransfer) Finish(err error)  { f.finished++; f.err = err }

// limitWriter accepts limit bytes, then fails, like a connection whose
// client went away.
type limitWriter struct {
	limit int64
	got   bytes.Buffer
}

var errGone = errors.New("connection reset by peer")

func (w *limitWriter) Write(p []byte) (int, error) {
	n := min(int64(len(p)), w.limit-int64(w.got.Len()))
	w.got.Write(p[:n])
	if n < int64(len(p)) {
		return int(n), errGone
	}
	return len(p), nil
}

// TestTrackedBodyReportsWrittenFileBytes: a response cut short reports
// exactly the file bytes the connection accepted: for a single range the
// written prefix, for a multipart body only the part data in it.
func TestTrackedBodyReportsWrittenFileBytes(t *testing.T) {
	s := &Server{metrics: newRequestCounters(), log: slog.New(slog.DiscardHandler)}
	data := testData(3000)
	spans := []span{{2000, 500}, {0, 1000}, {2700, 300}}
	const boundary = "bnd"
	body := refMultipart(boundary, "", spans, 3000, data)
	mask := refFileMask(boundary, "", spans, 3000)
	for _, limit := range []int64{0, 1, 40, 41, 300, 540, 1600, int64(len(body)) - 1, int64(len(body))} {
		for _, multipart := range []bool{false, true} {
			var ctx fasthttp.RequestCtx
			var src io.ReadCloser
			var want, n int64
			if multipart {
				srcPart := &partSource{t: t, data: data}
				src = newMultipartBody(boundary, "", spans, 3000, srcPart.open)
				n = int64(len(body))
				want = countTrue(mask[:min(limit, n)])
			} else {
				src = io.NopCloser(bytes.NewReader(data[1000:2500]))
				n = 1500
				want = min(limit, n)
			}
			ctx.Response.Header.SetContentLength(int(n))
			tb := s.track(&ctx, "test", src)
			ft := &fakeTransfer{}
			tb.transfer = ft
			if multipart {
				tb.parts = multipartLayout(boundary, "", spans, 3000)
			}
			w := &limitWriter{limit: limit}
			_, err := tb.WriteTo(w)
			tb.Close()
			if ft.delivered != want || ft.finished != 1 {
				t.Errorf("multipart %v, %d bytes accepted: reported %d file bytes (finished %d), want %d", multipart, limit, ft.delivered, ft.finished, want)
			}
			if cut := limit < n; cut != (ft.err != nil) || cut != (err != nil) {
				t.Errorf("multipart %v, %d of %d bytes accepted: write error %v, Finish error %v", multipart, limit, n, err, ft.err)
			}
		}
	}
}
