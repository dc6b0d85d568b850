package proxy

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// A multipart/byteranges body (RFC 9110 14.6) is laid out as
//
//	--BOUNDARY CRLF
//	Content-Type: TYPE CRLF
//	Content-Range: bytes a-b/SIZE CRLF
//	CRLF
//	<bytes a..b>
//	CRLF --BOUNDARY CRLF ... (next part)
//	CRLF --BOUNDARY-- CRLF
//
// The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1),
// so the first part starts directly with "--BOUNDARY", as in the example of
// RFC 9110 14.6 and as Go's mime/multipart writes it; some old clients choke
// on a leading blank line. The trailing CRLF after the close delimiter is
// what Go and nginx send too.

// newBoundary returns a fresh random multipart boundary: 26 characters of
// base32 (A-Z, 2-7) carrying 128 bits from crypto/rand, so it cannot
// plausibly occur inside the bytes it separates.
func newBoundary() string { return rand.Text() }

// multipartLength returns the exact length of the body newMultipartBody
// produces for the same arguments, so the 206 can carry Content-Length.
func multipartLength(boundary, contentType string, spans []span, size int64) int64 {
	contentType = partContentType(contentType)
	var n int64
	for i, s := range spans {
		n += int64(partHeaderLen(i == 0, boundary, contentType, s, size)) + s.Length
	}
	return n + int64(closeDelimiterLen(len(spans) > 0, boundary))
}

// partData says where one part's file bytes lie in a multipart body.
type partData struct {
	bodyOff int64 // offset in the body of the part's first file byte
	span    span  // the file bytes the part carries
}

// multipartLayout returns, for the body newMultipartBody produces with the
// same arguments, where each part's file bytes lie, so that the bytes
// written to the client can be told apart from part headers.
func multipartLayout(boundary, contentType string, spans []span, size int64) []partData {
	contentType = partContentType(contentType)
	out := make([]partData, len(spans))
	var pos int64
	for i, s := range spans {
		pos += int64(partHeaderLen(i == 0, boundary, contentType, s, size))
		out[i] = partData{bodyOff: pos, span: s}
		pos += s.Length
	}
	return out
}

// fileBytesIn returns how many file bytes the body bytes [from, to) carry:
// the part headers and delimiters in between count for nothing.
func fileBytesIn(parts []partData, from, to int64) int64 {
	var n int64
	for _, p := range parts {
		lo, hi := max(from, p.bodyOff), min(to, p.bodyOff+p.span.Length)
		if hi > lo {
			n += hi - lo
		}
	}
	return n
}

// newMultipartBody returns a reader of the whole multipart/byteranges body
// for spans of a size-byte representation; the caller sets the response
// Content-Type to "multipart/byteranges; boundary=" + boundary. Each part
// carries Content-Type: contentType, omitted when contentType is empty or
// holds control characters (it comes from object metadata and must not be
// able to inject part headers).
//
// open(off, n) supplies the bytes of one part. It is called lazily, once per
// part, when that part's bytes are first needed, and never before the
// previous part's reader has been closed, so at most one origin stream is
// open at a time. At most n bytes are read from it; a reader that ends
// early makes Read fail with an error wrapping io.ErrUnexpectedEOF, and
// errors of open or of the part reader are returned wrapped. Errors are
// sticky. Close closes the part reader currently open, if any.
//
// The reader is not safe for concurrent use: Read and Close must not race.
func newMultipartBody(boundary, contentType string, spans []span, size int64, open func(off, n int64) (io.ReadCloser, error)) io.ReadCloser {
	m := &multipartBody{
		boundary:    boundary,
		contentType: partContentType(contentType),
		spans:       spans,
		size:        size,
		open:        open,
	}
	m.hdr = m.hdrBuf[:0]
	return m
}

// errMultipartClosed is returned by Read after Close.
var errMultipartClosed = errors.New("proxy: multipart body closed")

type multipartBody struct {
	boundary, contentType string
	spans                 []span
	size                  int64
	open                  func(off, n int64) (io.ReadCloser, error)

	hdrBuf  [160]byte // backing store for hdr; most headers fit
	hdr     []byte    // delimiter and part header (or close delimiter) being emitted
	hdrOff  int       // bytes of hdr already emitted
	next    int       // index of the next part whose header is due
	done    bool      // close delimiter has been queued
	part    io.ReadCloser
	remain  int64 // bytes of the current part still to deliver
	err     error // sticky
	partIdx int   // index of the current part, for error messages
}

// Read fills p with header bytes, then with at most one Read of the current
// part reader, so it does not block on a second origin read while it already
// has bytes to hand back.
func (m *multipartBody) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n := 0
	didRead := false
	for n < len(p) {
		switch {
		case m.hdrOff < len(m.hdr):
			c := copy(p[n:], m.hdr[m.hdrOff:])
			m.hdrOff += c
			n += c
		case m.remain > 0:
			if didRead {
				return n, nil
			}
			didRead = true
			c, err := m.readPart(p[n:])
			n += c
			if err != nil {
				m.err = err
				return n, err
			}
		case !m.advance():
			m.err = io.EOF
			return n, io.EOF
		}
	}
	return n, nil
}

// advance queues the next part header, or the close delimiter after the
// last part. It reports false when the body is complete.
func (m *multipartBody) advance() bool {
	switch {
	case m.next < len(m.spans):
		s := m.spans[m.next]
		m.hdr = appendPartHeader(m.hdr[:0], m.next == 0, m.boundary, m.contentType, s, m.size)
		m.partIdx = m.next
		m.remain = s.Length
		m.next++
	case !m.done:
		m.hdr = appendCloseDelimiter(m.hdr[:0], len(m.spans) > 0, m.boundary)
		m.done = true
	default:
		return false
	}
	m.hdrOff = 0
	return true
}

// readPart reads at most m.remain bytes of the current part into p,
// opening the part reader on first use and closing it once the part is
// complete.
func (m *multipartBody) readPart(p []byte) (int, error) {
	s := m.spans[m.partIdx]
	if m.part == nil {
		rc, err := m.open(s.Start, s.Length)
		if err != nil {
			return 0, fmt.Errorf("proxy: multipart part %d (bytes %d-%d): open: %w", m.partIdx, s.Start, s.End()-1, err)
		}
		m.part = rc
	}
	if int64(len(p)) > m.remain {
		p = p[:m.remain]
	}
	c, err := m.part.Read(p)
	if c < 0 || c > len(p) {
		return 0, fmt.Errorf("proxy: multipart part %d: reader returned invalid count %d", m.partIdx, c)
	}
	m.remain -= int64(c)
	if m.remain == 0 {
		// The part is complete: whatever Read or Close report now cannot
		// make the delivered bytes wrong, so it is not an error of the body.
		_ = m.part.Close()
		m.part = nil
		return c, nil
	}
	switch {
	case err == io.EOF:
		return c, fmt.Errorf("proxy: multipart part %d (bytes %d-%d): %d bytes missing: %w", m.partIdx, s.Start, s.End()-1, m.remain, io.ErrUnexpectedEOF)
	case err != nil:
		return c, fmt.Errorf("proxy: multipart part %d (bytes %d-%d): read: %w", m.partIdx, s.Start, s.End()-1, err)
	}
	return c, nil
}

// Close closes the part reader currently open, if any; later Reads fail.
func (m *multipartBody) Close() error {
	m.err = errMultipartClosed
	if m.part == nil {
		return nil
	}
	err := m.part.Close()
	m.part = nil
	if err != nil {
		return fmt.Errorf("proxy: multipart part %d: close: %w", m.partIdx, err)
	}
	return nil
}

const (
	partContentTypeName  = "Content-Type: "
	partContentRangeName = "Content-Range: "
)

// appendPartHeader appends the delimiter and headers that precede part s.
// partHeaderLen must agree with it byte for byte.
func appendPartHeader(dst []byte, first bool, boundary, contentType string, s span, size int64) []byte {
	if !first {
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "--"...)
	dst = append(dst, boundary...)
	dst = append(dst, "\r\n"...)
	if contentType != "" {
		dst = append(dst, partContentTypeName...)
		dst = append(dst, contentType...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, partContentRangeName...)
	dst = appendContentRange(dst, s, size)
	return append(dst, "\r\n\r\n"...)
}

func partHeaderLen(first bool, boundary, contentType string, s span, size int64) int {
	n := 2 + len(boundary) + 2 // "--" BOUNDARY CRLF
	if !first {
		n += 2
	}
	if contentType != "" {
		n += len(partContentTypeName) + len(contentType) + 2
	}
	// "bytes " START "-" END "/" SIZE, then CRLF CRLF.
	n += len(partContentRangeName) + len("bytes ") + decimalLen(s.Start) + 1 + decimalLen(s.End()-1) + 1 + decimalLen(size)
	return n + 4
}

// appendCloseDelimiter appends the close delimiter; the leading CRLF ends
// the last part's bytes, so it is omitted only when there is no part.
func appendCloseDelimiter(dst []byte, afterPart bool, boundary string) []byte {
	if afterPart {
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "--"...)
	dst = append(dst, boundary...)
	return append(dst, "--\r\n"...)
}

func closeDelimiterLen(afterPart bool, boundary string) int {
	n := 2 + len(boundary) + 4
	if afterPart {
		n += 2
	}
	return n
}

// partContentType returns contentType if it is safe to copy into a part
// header: no control characters other than HTAB (RFC 9110 5.5).
func partContentType(contentType string) string {
	for i := 0; i < len(contentType); i++ {
		if c := contentType[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return ""
		}
	}
	return contentType
}

// decimalLen returns the length of strconv.FormatInt(v, 10).
func decimalLen(v int64) int {
	n := 1
	if v < 0 {
		n++
		if v == -v { // math.MinInt64
			return 20
		}
		v = -v
	}
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}
