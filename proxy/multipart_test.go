package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// partSource is a fake origin for newMultipartBody: it serves data, records
// every open and close, and injects faults.
type partSource struct {
	t       *testing.T
	data    []byte
	opens   []span // arguments of each open call, in order
	current *fakePart
	parts   []*fakePart
	openErr error // returned by open when set
	short   int64 // each part reader ends this many bytes early
	readErr error // each part reader fails with this after its first byte
	closeEr error // returned by each part reader's Close
}

type fakePart struct {
	src    *partSource
	r      io.Reader
	read   int64 // bytes handed to the body
	closed int   // Close calls
}

func (s *partSource) open(off, n int64) (io.ReadCloser, error) {
	s.t.Helper()
	if s.current != nil && s.current.closed == 0 {
		s.t.Errorf("open(%d, %d) while the previous part reader is still open", off, n)
	}
	s.opens = append(s.opens, span{off, n})
	if s.openErr != nil {
		return nil, s.openErr
	}
	// The reader holds the rest of the representation, more than n bytes,
	// so reading past the part would be visible in p.read.
	p := &fakePart{src: s, r: bytes.NewReader(s.data[off : off+n-s.short])}
	if s.short == 0 {
		p.r = bytes.NewReader(s.data[off:])
	}
	s.current = p
	s.parts = append(s.parts, p)
	return p, nil
}

func (p *fakePart) Read(b []byte) (int, error) {
	if p.closed > 0 {
		return 0, errors.New("read after close")
	}
	if p.src.readErr != nil && p.read > 0 {
		return 0, p.src.readErr
	}
	if p.src.readErr != nil && len(b) > 1 {
		b = b[:1]
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	return n, err
}

func (p *fakePart) Close() error {
	p.closed++
	return p.src.closeEr
}

func testData(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// refMultipart formats the expected body with fmt, independently of the
// append helpers under test.
func refMultipart(boundary, contentType string, spans []span, size int64, data []byte) []byte {
	var b bytes.Buffer
	for i, s := range spans {
		if i > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "--%s\r\n", boundary)
		if contentType != "" {
			fmt.Fprintf(&b, "Content-Type: %s\r\n", contentType)
		}
		fmt.Fprintf(&b, "Content-Range: bytes %d-%d/%d\r\n\r\n", s.Start, s.Start+s.Length-1, size)
		b.Write(data[s.Start : s.Start+s.Length])
	}
	if len(spans) > 0 {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

func TestMultipartBodyParses(t *testing.T) {
	data := testData(1000)
	size := int64(len(data))
	tests := []struct {
		name        string
		contentType string
		header      string
	}{
		{"two parts", "application/pdf", "bytes=0-9,500-"},
		{"one part", "text/plain; charset=utf-8", "bytes=-1"},
		{"no content type", "", "bytes=0-0,2-2,4-4,990-"},
		{"merged and sorted", "video/mp4", "bytes=900-,0-99,100-199,-50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans, err := parseRange(nil, []byte(tt.header), size)
			if err != nil {
				t.Fatal(err)
			}
			boundary := newBoundary()
			src := &partSource{t: t, data: data}
			body, err := io.ReadAll(newMultipartBody(boundary, tt.contentType, spans, size, src.open))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := int64(len(body)), multipartLength(boundary, tt.contentType, spans, size); got != want {
				t.Fatalf("body is %d bytes, multipartLength says %d", got, want)
			}
			if !bytes.HasPrefix(body, []byte("--"+boundary+"\r\n")) || !bytes.HasSuffix(body, []byte("\r\n--"+boundary+"--\r\n")) {
				t.Fatalf("body does not start with the first delimiter or end with the close delimiter:\n%q", body)
			}

			_, params, err := mime.ParseMediaType("multipart/byteranges; boundary=" + boundary)
			if err != nil {
				t.Fatal(err)
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			for i, s := range spans {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if got := part.Header.Values("Content-Type"); tt.contentType == "" && len(got) != 0 || tt.contentType != "" && !slices.Equal(got, []string{tt.contentType}) {
					t.Errorf("part %d Content-Type = %q, want %q", i, got, tt.contentType)
				}
				if got, want := part.Header.Get("Content-Range"), string(appendContentRange(nil, s, size)); got != want {
					t.Errorf("part %d Content-Range = %q, want %q", i, got, want)
				}
				if len(part.Header) != 1+min(1, len(tt.contentType)) {
					t.Errorf("part %d has headers %v", i, part.Header)
				}
				got, err := io.ReadAll(part)
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if !bytes.Equal(got, data[s.Start:s.End()]) {
					t.Errorf("part %d bytes differ: got %d bytes, want %d", i, len(got), s.Length)
				}
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Fatalf("after the last part: %v, want io.EOF", err)
			}
		})
	}
}

// TestMultipartLengthRandom compares the body and multipartLength with a
// reference formatter over random span sets, read in odd-sized pieces.
func TestMultipartLengthRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	types := []string{"", "application/octet-stream", `video/mp4; codecs="avc1.64001F"`, "a/b\r\nX-Injected: 1"}
	data := testData(100000)
	for iter := range 300 {
		size := 1 + r.Int64N(int64(len(data)))
		if iter%10 == 0 { // lengths with many digits too
			size = int64(len(data))
		}
		var spans []span
		for start := r.Int64N(size); start < size && len(spans) < maxRanges; {
			n := 1 + r.Int64N(size-start)
			if r.IntN(2) == 0 {
				n = 1 + r.Int64N(min(size-start, 50))
			}
			spans = append(spans, span{start, n})
			start += n + 1 + r.Int64N(size/4+1)
		}
		boundary := newBoundary()[:1+r.IntN(26)]
		ct := types[r.IntN(len(types))]
		src := &partSource{t: t, data: data[:size]}
		body := newMultipartBody(boundary, ct, spans, size, src.open)
		var reader io.Reader = body
		switch iter % 3 {
		case 0:
			reader = iotest.OneByteReader(body)
		case 1:
			reader = iotest.HalfReader(body)
		}
		got, err := io.ReadAll(reader)
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		wantCT := ct
		if strings.ContainsAny(ct, "\r\n") {
			wantCT = ""
		}
		want := refMultipart(boundary, wantCT, spans, size, data)
		if !bytes.Equal(got, want) {
			t.Fatalf("iteration %d (spans %v, type %q): body differs from reference\n got %q\nwant %q", iter, spans, ct, got, want)
		}
		if n := multipartLength(boundary, ct, spans, size); n != int64(len(got)) {
			t.Fatalf("iteration %d: multipartLength = %d, body is %d bytes", iter, n, len(got))
		}
		if len(src.opens) != len(spans) {
			t.Fatalf("iteration %d: %d opens for %d parts", iter, len(src.opens), len(spans))
		}
		for i, p := range src.parts {
			if p.closed != 1 || p.read != spans[i].Length {
				t.Fatalf("iteration %d part %d: closed %d times, %d bytes read of %d", iter, i, p.closed, p.read, spans[i].Length)
			}
		}
	}
}

func TestMultipartBodyIOTest(t *testing.T) {
	data := testData(5000)
	spans := []span{{0, 1}, {10, 1000}, {4000, 1000}}
	want := refMultipart("b0undary", "x/y", spans, 5000, data)
	src := &partSource{t: t, data: data}
	if err := iotest.TestReader(newMultipartBody("b0undary", "x/y", spans, 5000, src.open), want); err != nil {
		t.Fatal(err)
	}
}

func TestMultipartBodyNoSpans(t *testing.T) {
	src := &partSource{t: t}
	got, err := io.ReadAll(newMultipartBody("B", "x/y", nil, 10, src.open))
	if err != nil || string(got) != "--B--\r\n" || multipartLength("B", "x/y", nil, 10) != int64(len(got)) {
		t.Fatalf("got %q, %v; multipartLength %d", got, err, multipartLength("B", "x/y", nil, 10))
	}
	if len(src.opens) != 0 {
		t.Fatalf("%d opens", len(src.opens))
	}
}

func TestMultipartBodyLazy(t *testing.T) {
	data := testData(1000)
	spans := []span{{0, 10}, {100, 50}, {900, 100}}
	src := &partSource{t: t, data: data}
	body := newMultipartBody("BOUND", "x/y", spans, 1000, src.open)
	defer body.Close()

	hdr := appendPartHeader(nil, true, "BOUND", "x/y", spans[0], 1000)
	buf := make([]byte, len(hdr))
	if _, err := io.ReadFull(body, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, hdr) || len(src.opens) != 0 {
		t.Fatalf("after the first header (%q): %d opens, want 0", buf, len(src.opens))
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(body, one); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.opens, spans[:1]) || one[0] != data[0] {
		t.Fatalf("after one data byte: opens %v, byte %x", src.opens, one[0])
	}
	// Up to the end of the first part and the second header: still one open,
	// and the first reader is already closed.
	rest := make([]byte, 9+len(appendPartHeader(nil, false, "BOUND", "x/y", spans[1], 1000)))
	if _, err := io.ReadFull(body, rest); err != nil {
		t.Fatal(err)
	}
	if len(src.opens) != 1 || src.parts[0].closed != 1 {
		t.Fatalf("after part 0: opens %v, part 0 closed %d times", src.opens, src.parts[0].closed)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.opens, spans) {
		t.Fatalf("opens %v, want %v", src.opens, spans)
	}
	for i, p := range src.parts {
		if p.closed != 1 || p.read != spans[i].Length {
			t.Errorf("part %d: closed %d times, read %d bytes, want 1 and %d", i, p.closed, p.read, spans[i].Length)
		}
	}
}

func TestMultipartBodyErrors(t *testing.T) {
	data := testData(1000)
	spans := []span{{0, 10}, {100, 50}}
	errOpen := errors.New("origin down")
	errRead := errors.New("connection reset")
	tests := []struct {
		name string
		src  partSource
		want error
	}{
		{"open fails", partSource{openErr: errOpen}, errOpen},
		{"short part", partSource{short: 1}, io.ErrUnexpectedEOF},
		{"read fails", partSource{readErr: errRead}, errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &tt.src
			src.t, src.data = t, data
			body := newMultipartBody("B", "", spans, 1000, src.open)
			got, err := io.ReadAll(body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadAll error = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "proxy: multipart part 0") {
				t.Errorf("error %q does not say which part", err)
			}
			if want := refMultipart("B", "", spans, 1000, data); len(got) >= len(want) || !bytes.Equal(got, want[:len(got)]) {
				t.Fatalf("bytes before the error are not a prefix of the body: %q", got)
			}
			if _, err2 := body.Read(make([]byte, 10)); err2 != err {
				t.Fatalf("second Read error = %v, want the sticky %v", err2, err)
			}
			if len(src.opens) != 1 {
				t.Fatalf("%d opens after a failure in part 0", len(src.opens))
			}
			if err := body.Close(); err != nil {
				t.Fatal(err)
			}
			for i, p := range src.parts {
				if p.closed != 1 {
					t.Errorf("part %d closed %d times", i, p.closed)
				}
			}
		})
	}
}

// TestMultipartBodyEOFWithLastBytes: a part reader may return its last bytes
// together with io.EOF; that is a complete part, not an error.
func TestMultipartBodyEOFWithLastBytes(t *testing.T) {
	data := testData(100)
	spans := []span{{0, 10}, {50, 50}}
	open := func(off, n int64) (io.ReadCloser, error) {
		return io.NopCloser(iotest.DataErrReader(bytes.NewReader(data[off : off+n]))), nil
	}
	got, err := io.ReadAll(newMultipartBody("B", "", spans, 100, open))
	if err != nil {
		t.Fatal(err)
	}
	if want := refMultipart("B", "", spans, 100, data); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMultipartBodyCloseMidBody(t *testing.T) {
	data := testData(1000)
	spans := []span{{0, 100}, {500, 100}}
	errClose := errors.New("close failed")
	src := &partSource{t: t, data: data, closeEr: errClose}
	body := newMultipartBody("B", "x/y", spans, 1000, src.open)
	buf := make([]byte, len(appendPartHeader(nil, true, "B", "x/y", spans[0], 1000))+5)
	if _, err := io.ReadFull(body, buf); err != nil {
		t.Fatal(err)
	}
	if len(src.parts) != 1 || src.parts[0].closed != 0 {
		t.Fatalf("mid part 0: %d parts open", len(src.parts))
	}
	if err := body.Close(); !errors.Is(err, errClose) {
		t.Fatalf("Close = %v, want %v", err, errClose)
	}
	if src.parts[0].closed != 1 {
		t.Fatalf("part 0 closed %d times, want 1", src.parts[0].closed)
	}
	if n, err := body.Read(buf); n != 0 || err == nil {
		t.Fatalf("Read after Close = %d, %v; want an error", n, err)
	}
	if err := body.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if len(src.opens) != 1 || src.parts[0].closed != 1 {
		t.Fatalf("after Close: %d opens, part 0 closed %d times", len(src.opens), src.parts[0].closed)
	}
}

func TestNewBoundary(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		b := newBoundary()
		if len(b) < 20 || len(b) > 70 {
			t.Fatalf("boundary %q has length %d", b, len(b))
		}
		// RFC 2046 bchars, restricted to what needs no quoting in the
		// Content-Type parameter.
		if strings.Trim(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("boundary %q has characters outside [A-Za-z0-9]", b)
		}
		if seen[b] {
			t.Fatalf("boundary %q repeated", b)
		}
		seen[b] = true
		_, params, err := mime.ParseMediaType("multipart/byteranges; boundary=" + b)
		if err != nil || params["boundary"] != b {
			t.Fatalf("boundary %q does not survive a Content-Type round trip: %v %v", b, params, err)
		}
	}
}

func TestDecimalLen(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 99, 100, -1, -10, 1<<63 - 1, -1 << 63} {
		if got, want := decimalLen(v), len(fmt.Sprint(v)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", v, got, want)
		}
	}
}

func BenchmarkMultipartBody(b *testing.B) {
	data := testData(1 << 20)
	spans, err := parseRange(nil, []byte("bytes=0-65535,131072-262143,-4096"), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	open := func(off, n int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
	}
	buf := make([]byte, 32<<10)
	b.SetBytes(multipartLength("B", "application/octet-stream", spans, int64(len(data))))
	b.ReportAllocs()
	for b.Loop() {
		body := newMultipartBody("B", "application/octet-stream", spans, int64(len(data)), open)
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{body}, buf); err != nil {
			b.Fatal(err)
		}
		body.Close()
	}
}
