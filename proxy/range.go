package proxy

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/edgeproxy/edgeproxy/internal/httpsyntax"
)

// span is one satisfiable byte range: bytes [Start, Start+Length) of the
// representation. Spans returned by parseRange always have 0 <= Start,
// Length > 0 and Start+Length <= size.
type span struct{ Start, Length int64 }

// End returns the offset one past the span's last byte.
func (s span) End() int64 { return s.Start + s.Length }

// The three ways a Range header can fail to produce spans. Each tells the
// caller what to answer, so the handler never has to look inside the header.
var (
	// errRangeInvalid: the header is not a bytes range set we understand
	// (bad syntax, another unit, last-pos < first-pos). RFC 9110 14.2 says
	// to ignore such a header: serve 200 with the full representation.
	errRangeInvalid = errors.New("proxy: invalid range")
	// errRangeUnsatisfiable: the header is valid but no range overlaps the
	// representation. Answer 416 with Content-Range: bytes */SIZE
	// (RFC 9110 15.5.17), see appendUnsatisfiedRange.
	errRangeUnsatisfiable = errors.New("proxy: range not satisfiable")
	// errTooManyRanges: the range set trips the abuse policy (see
	// parseRange). RFC 9110 14.2 lets a server ignore Range, so serve 200
	// with the full representation.
	errTooManyRanges = errors.New("proxy: too many ranges")
)

// Limits of the abuse policy. Each part of a multipart/byteranges answer
// costs a part header and possibly an origin request, and overlapping ranges
// were the amplification behind CVE-2011-3192 (Apache "Range: bytes=0-,0-,...").
const (
	// maxRanges is the most spans parseRange returns, counted after
	// overlapping and adjacent ranges have been merged.
	maxRanges = 32
	// maxRangeSpecs is the most non-empty range-specs a header may list,
	// before merging. A caller whose dst has room for maxRangeSpecs spans
	// gets parseRange without allocation.
	maxRangeSpecs = 2 * maxRanges
	// maxRangeHeaderLen is the longest Range field value considered, in bytes.
	maxRangeHeaderLen = 4096
	// maxRangeOverlaps is how many satisfiable ranges may ask again for bytes
	// an earlier one (in start order) already covers. Real clients send
	// disjoint ranges; re-asking for the same bytes is only useful to attack.
	// Adjacent ranges do not count: they are merged at no cost.
	maxRangeOverlaps = 2
)

// parseRange appends the spans of header, the value of a Range field
// (RFC 9110 14.2), for a representation of size bytes to dst, and returns
// the extended slice. On error it returns dst unchanged.
//
// Syntax (RFC 9110 14.1): unit "bytes" compared case-insensitively, "=",
// then a comma-separated list whose elements may be surrounded by optional
// whitespace; empty elements are skipped as the list rule (RFC 9110 5.6.1)
// requires, but at least one range-spec must remain. A range-spec is
// "first-last", "first-" (to the end) or "-suffix" (the last suffix bytes);
// numbers are ASCII digits only. last < first invalidates the whole header.
// Any error of syntax or any other unit gives errRangeInvalid.
//
// Satisfiability (RFC 9110 14.1.3): last is clamped to size-1 and a suffix to
// size, so huge numbers, even beyond int64, are clamped rather than
// overflowing; a range whose first >= size, or a suffix of 0, selects nothing
// and is dropped. If nothing remains the result is errRangeUnsatisfiable.
//
// Size 0: every range is unsatisfiable. RFC 9110 14.1.3 calls a non-zero
// suffix satisfiable even then, yet it selects no byte, and Content-Range
// cannot express an empty range; we answer 416 with "bytes */0", which tells
// the client the length, rather than pretend to have a part to send.
// A negative size (length unknown) gives errRangeInvalid: serve 200.
//
// The result is sorted by Start, with overlapping and adjacent ranges merged
// (RFC 9110 14.2 permits coalescing), so a single span means a single-part
// 206. Abuse policy (RFC 9110 14.2 lets a server ignore Range), each giving
// errTooManyRanges: a header longer than maxRangeHeaderLen; more than
// maxRangeSpecs range-specs; more than maxRangeOverlaps ranges that overlap
// an earlier one; more than maxRanges spans after merging.
//
// parseRange does not allocate when cap(dst)-len(dst) >= maxRangeSpecs.
func parseRange(dst []span, header []byte, size int64) ([]span, error) {
	if len(header) > maxRangeHeaderLen {
		return dst, errTooManyRanges
	}
	if size < 0 {
		return dst, errRangeInvalid
	}
	header = httpsyntax.TrimOWS(header)
	eq := bytes.IndexByte(header, '=')
	if eq < 0 || !rangeEqualFold(header[:eq], "bytes") {
		return dst, errRangeInvalid
	}
	base := len(dst)
	specs := 0
	rest := header[eq+1:]
	for {
		comma := bytes.IndexByte(rest, ',')
		elem := rest
		if comma >= 0 {
			elem = rest[:comma]
		}
		if elem = httpsyntax.TrimOWS(elem); len(elem) > 0 {
			if specs++; specs > maxRangeSpecs {
				return dst[:base], errTooManyRanges
			}
			s, ok, err := parseRangeSpec(elem, size)
			if err != nil {
				return dst[:base], err
			}
			if ok {
				dst = append(dst, s)
			}
		}
		if comma < 0 {
			break
		}
		rest = rest[comma+1:]
	}
	if specs == 0 {
		return dst[:base], errRangeInvalid
	}
	if len(dst) == base {
		return dst, errRangeUnsatisfiable
	}
	n, overlaps := coalesceSpans(dst[base:])
	if overlaps > maxRangeOverlaps || n > maxRanges {
		return dst[:base], errTooManyRanges
	}
	return dst[:base+n], nil
}

// parseRangeSpec parses one non-empty range-spec. ok is false when the range is
// valid but selects no byte of a size-byte representation.
func parseRangeSpec(b []byte, size int64) (s span, ok bool, err error) {
	dash := bytes.IndexByte(b, '-')
	if dash < 0 {
		return span{}, false, errRangeInvalid
	}
	first, last := b[:dash], b[dash+1:]
	if len(first) == 0 { // suffix-range: the last n bytes
		n, valid := parseRangeDigits(last)
		if !valid {
			return span{}, false, errRangeInvalid
		}
		n = min(n, size)
		return span{Start: size - n, Length: n}, n > 0, nil
	}
	start, valid := parseRangeDigits(first)
	if !valid {
		return span{}, false, errRangeInvalid
	}
	end := int64(math.MaxInt64) // "first-": to the end
	if len(last) > 0 {
		if end, valid = parseRangeDigits(last); !valid || compareRangeDigits(first, last) > 0 {
			return span{}, false, errRangeInvalid
		}
	}
	if start >= size {
		return span{}, false, nil
	}
	end = min(end, size-1)
	return span{Start: start, Length: end - start + 1}, true, nil
}

// coalesceSpans sorts spans by start and merges overlapping and adjacent ones in
// place. It returns how many spans remain at the front of spans and how
// many input spans overlapped (not merely touched) an earlier one.
func coalesceSpans(spans []span) (n, overlaps int) {
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for _, s := range spans {
		if n > 0 {
			last := &spans[n-1]
			if end := last.End(); s.Start <= end {
				if s.Start < end {
					overlaps++
				}
				if e := s.End(); e > end {
					last.Length = e - last.Start
				}
				continue
			}
		}
		spans[n] = s
		n++
	}
	return n, overlaps
}

// parseRangeDigits parses a non-empty string of ASCII digits. Values beyond
// int64 saturate at math.MaxInt64: every caller clamps to the size anyway,
// and compareRangeDigits orders the original text exactly.
func parseRangeDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue // keep validating the remaining characters
		}
		n = n*10 + d
	}
	return n, true
}

// compareRangeDigits compares two valid digit strings as unbounded integers.
func compareRangeDigits(a, b []byte) int {
	a, b = rangeTrimZeros(a), rangeTrimZeros(b)
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func rangeTrimZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == '0' {
		b = b[1:]
	}
	return b
}

// rangeEqualFold reports whether b equals s ignoring ASCII case, without
// converting b to a string. s must be a lowercase word of letters only.
func rangeEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != s[i] {
			return false
		}
	}
	return true
}

// appendContentRange appends the Content-Range value "bytes START-END/SIZE"
// (RFC 9110 14.4) for s to dst.
func appendContentRange(dst []byte, s span, size int64) []byte {
	dst = append(dst, "bytes "...)
	dst = strconv.AppendInt(dst, s.Start, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, s.End()-1, 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, size, 10)
}

// appendUnsatisfiedRange appends the Content-Range value "bytes */SIZE" that
// a 416 answer carries (RFC 9110 14.4) to dst.
func appendUnsatisfiedRange(dst []byte, size int64) []byte {
	dst = append(dst, "bytes */"...)
	return strconv.AppendInt(dst, size, 10)
}
