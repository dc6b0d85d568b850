package proxy

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
)

// rangeList builds "bytes=0-0,2-2,..." with n disjoint, non-adjacent ranges.
func rangeList(n int) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", 2*i, 2*i)
	}
	return b.String()
}

// adjacentList builds n ranges of one byte each that touch: 0-0,1-1,...
func adjacentList(n int) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", i, i)
	}
	return b.String()
}

func spanList(n int) []span {
	s := make([]span, n)
	for i := range s {
		s[i] = span{Start: int64(2 * i), Length: 1}
	}
	return s
}

var parseRangeTests = []struct {
	name   string
	header string
	size   int64
	want   []span
	err    error
}{
	// Invalid: the header is ignored and the full body served.
	{"empty header", "", 100, nil, errRangeInvalid},
	{"no equals", "bytes", 100, nil, errRangeInvalid},
	{"empty set", "bytes=", 100, nil, errRangeInvalid},
	{"only commas", "bytes=,", 100, nil, errRangeInvalid},
	{"only commas and OWS", "bytes= , \t,", 100, nil, errRangeInvalid},
	{"other unit", "items=0-1", 100, nil, errRangeInvalid},
	{"no unit", "=0-1", 100, nil, errRangeInvalid},
	{"unit prefix", "bytesx=0-1", 100, nil, errRangeInvalid},
	{"space before equals", "bytes =0-1", 100, nil, errRangeInvalid},
	{"unicode fold of unit", "byte\u017f=0-1", 100, nil, errRangeInvalid},
	{"last before first", "bytes=1-0", 100, nil, errRangeInvalid},
	{"last before first among valid", "bytes=0-1,5-4,10-20", 100, nil, errRangeInvalid},
	{"last before first, both huge", "bytes=99999999999999999999-99999999999999999998", 100, nil, errRangeInvalid},
	{"last before first, first huge", "bytes=99999999999999999999-5", 100, nil, errRangeInvalid},
	{"last before first, unsatisfiable", "bytes=500-400", 100, nil, errRangeInvalid},
	{"dash only", "bytes=-", 100, nil, errRangeInvalid},
	{"no dash", "bytes=5", 100, nil, errRangeInvalid},
	{"two dashes", "bytes=1-2-3", 100, nil, errRangeInvalid},
	{"double dash suffix", "bytes=--5", 100, nil, errRangeInvalid},
	{"plus sign", "bytes=+1-2", 100, nil, errRangeInvalid},
	{"minus in last", "bytes=1--2", 100, nil, errRangeInvalid},
	{"space inside number", "bytes=1 0-20", 100, nil, errRangeInvalid},
	{"space around dash", "bytes=0 - 1", 100, nil, errRangeInvalid},
	{"letters", "bytes=a-b", 100, nil, errRangeInvalid},
	{"hex", "bytes=0x1-2", 100, nil, errRangeInvalid},
	{"unicode digit", "bytes=\u0661-2", 100, nil, errRangeInvalid},
	{"semicolon separator", "bytes=0-1;3-4", 100, nil, errRangeInvalid},
	{"invalid after unsatisfiable", "bytes=500-600,x", 100, nil, errRangeInvalid},
	{"negative size", "bytes=0-1", -1, nil, errRangeInvalid},

	// Unsatisfiable: 416 with Content-Range: bytes */SIZE.
	{"first at size", "bytes=100-", 100, nil, errRangeUnsatisfiable},
	{"first beyond size", "bytes=100-200", 100, nil, errRangeUnsatisfiable},
	{"suffix zero", "bytes=-0", 100, nil, errRangeUnsatisfiable},
	{"suffix zeros", "bytes=-000", 100, nil, errRangeUnsatisfiable},
	{"huge first", "bytes=99999999999999999999-", 100, nil, errRangeUnsatisfiable},
	{"huge first and last", "bytes=99999999999999999999-999999999999999999999", 100, nil, errRangeUnsatisfiable},
	{"max int64 first", "bytes=9223372036854775807-", 100, nil, errRangeUnsatisfiable},
	{"all unsatisfiable", "bytes=100-101,-0,200-", 100, nil, errRangeUnsatisfiable},
	{"size 0 int range", "bytes=0-0", 0, nil, errRangeUnsatisfiable},
	{"size 0 open range", "bytes=0-", 0, nil, errRangeUnsatisfiable},
	{"size 0 suffix", "bytes=-1", 0, nil, errRangeUnsatisfiable},
	{"size 0 many", "bytes=0-10,-5,3-", 0, nil, errRangeUnsatisfiable},

	// Too many: the header is ignored and the full body served.
	{"33 disjoint ranges", rangeList(33), 1000, nil, errTooManyRanges},
	{"65 range-specs that merge into one", adjacentList(65), 1000, nil, errTooManyRanges},
	{"3 overlaps", "bytes=0-,0-,0-,0-", 1000, nil, errTooManyRanges},
	{"3 overlaps, tiny", "bytes=5-6,6-7,7-8,8-9", 1000, nil, errTooManyRanges},
	{"3 overlaps via suffix", "bytes=-10,-10,-10,-10", 1000, nil, errTooManyRanges},
	{"header too long", "bytes=0-0" + strings.Repeat(" ", maxRangeHeaderLen-8), 1000, nil, errTooManyRanges},
	{"too long even if invalid", "items=" + strings.Repeat("x", maxRangeHeaderLen), 1000, nil, errTooManyRanges},

	// Satisfiable.
	{"first byte", "bytes=0-0", 100, []span{{0, 1}}, nil},
	{"last byte by suffix", "bytes=-1", 100, []span{{99, 1}}, nil},
	{"open range", "bytes=5-", 100, []span{{5, 95}}, nil},
	{"last byte open", "bytes=99-", 100, []span{{99, 1}}, nil},
	{"whole", "bytes=0-99", 100, []span{{0, 100}}, nil},
	{"last clamped", "bytes=0-100", 100, []span{{0, 100}}, nil},
	{"huge last clamped", "bytes=0-99999999999999999999999", 100, []span{{0, 100}}, nil},
	{"max int64 last", "bytes=10-9223372036854775807", 100, []span{{10, 90}}, nil},
	{"suffix clamped", "bytes=-500", 100, []span{{0, 100}}, nil},
	{"huge suffix clamped", "bytes=-99999999999999999999", 100, []span{{0, 100}}, nil},
	{"leading zeros", "bytes=0005-0010", 100, []span{{5, 6}}, nil},
	{"upper-case unit", "Bytes=0-1", 100, []span{{0, 2}}, nil},
	{"shouted unit", "BYTES=0-1", 100, []span{{0, 2}}, nil},
	{"OWS around elements", "bytes= 0-1 ,\t5-6\t", 100, []span{{0, 2}, {5, 2}}, nil},
	{"OWS around field", " \tbytes=0-1 ", 100, []span{{0, 2}}, nil},
	{"empty elements", "bytes=,0-1,,  ,5-6,", 100, []span{{0, 2}, {5, 2}}, nil},
	{"unsatisfiable dropped", "bytes=200-300,0-1,-0", 100, []span{{0, 2}}, nil},
	{"two disjoint", "bytes=0-1,10-19", 100, []span{{0, 2}, {10, 10}}, nil},
	{"sorted ascending", "bytes=50-59,-10,0-0", 100, []span{{0, 1}, {50, 10}, {90, 10}}, nil},
	{"adjacent merged", "bytes=0-4,5-9", 100, []span{{0, 10}}, nil},
	{"adjacent merged out of order", "bytes=5-9,0-4", 100, []span{{0, 10}}, nil},
	{"overlap merged", "bytes=0-5,3-9", 100, []span{{0, 10}}, nil},
	{"contained merged", "bytes=0-50,10-20", 100, []span{{0, 51}}, nil},
	{"duplicate merged", "bytes=10-20,10-20", 100, []span{{10, 11}}, nil},
	{"two overlaps allowed", "bytes=0-10,5-15,8-20,30-40", 100, []span{{0, 21}, {30, 11}}, nil},
	{"suffix overlapping open", "bytes=90-,-5", 100, []span{{90, 10}}, nil},
	{"32 disjoint ranges", rangeList(32), 1000, spanList(32), nil},
	{"64 range-specs merge into one", adjacentList(64), 1000, []span{{0, 64}}, nil},
	{"33 ranges, one unsatisfiable", rangeList(32) + ",5000-", 1000, spanList(32), nil},
	{"header at the limit", "bytes=0-0" + strings.Repeat(" ", maxRangeHeaderLen-9), 1000, []span{{0, 1}}, nil},
	{"size 1", "bytes=0-", 1, []span{{0, 1}}, nil},
	{"max size", "bytes=-1", math.MaxInt64, []span{{math.MaxInt64 - 1, 1}}, nil},
	{"max size open", "bytes=9223372036854775806-", math.MaxInt64, []span{{math.MaxInt64 - 1, 1}}, nil},
}

func TestParseRange(t *testing.T) {
	for _, tt := range parseRangeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRange(nil, []byte(tt.header), tt.size)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("parseRange(%q, %d) error = %v, want %v", tt.header, tt.size, err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("parseRange(%q, %d) = %v, want %v", tt.header, tt.size, got, tt.want)
			}
			if err == nil && len(got) > maxRanges {
				t.Fatalf("parseRange(%q) returned %d spans", tt.header, len(got))
			}
		})
	}
}

// TestParseRangeAppends checks that parseRange keeps what dst already holds,
// only sorts what it appends, and returns dst unchanged on error.
func TestParseRangeAppends(t *testing.T) {
	prefix := []span{{Start: 500, Length: 1}}
	dst := append(make([]span, 0, 8), prefix...)
	got, err := parseRange(dst, []byte("bytes=10-19,0-4"), 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{500, 1}, {0, 5}, {10, 10}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, h := range []string{"bytes=1-0", "bytes=2000-", rangeList(33)} {
		got, err := parseRange(dst, []byte(h), 1000)
		if err == nil || !slices.Equal(got, prefix) {
			t.Fatalf("parseRange(%q) = %v, %v; want prefix %v and an error", h, got, err, prefix)
		}
	}
}

func TestParseRangeNoAlloc(t *testing.T) {
	headers := []string{
		"bytes=0-1023",
		"bytes=-500",
		"Bytes= 0-1, 5-9 ,,100-",
		"bytes=0-99999999999999999999999,99999999999999999999-",
		rangeList(32),
		adjacentList(maxRangeSpecs),
		rangeList(33),     // too many
		"bytes=1-0",       // invalid
		"bytes=5000-6000", // unsatisfiable
	}
	dst := make([]span, 0, maxRangeSpecs)
	for _, h := range headers {
		hb := []byte(h)
		allocs := testing.AllocsPerRun(100, func() {
			dst, _ = parseRange(dst[:0], hb, 1000)
		})
		if allocs != 0 {
			t.Errorf("parseRange(%q) allocates %.1f times per call, want 0", h, allocs)
		}
	}
}

func TestAppendContentRange(t *testing.T) {
	tests := []struct {
		s    span
		size int64
		want string
	}{
		{span{0, 1}, 1, "bytes 0-0/1"},
		{span{0, 100}, 100, "bytes 0-99/100"},
		{span{42, 8}, 1000, "bytes 42-49/1000"},
		{span{math.MaxInt64 - 1, 1}, math.MaxInt64, "bytes 9223372036854775806-9223372036854775806/9223372036854775807"},
	}
	for _, tt := range tests {
		if got := string(appendContentRange([]byte("x:"), tt.s, tt.size)); got != "x:"+tt.want {
			t.Errorf("appendContentRange(%v, %d) = %q, want %q", tt.s, tt.size, got, "x:"+tt.want)
		}
	}
	if got := string(appendUnsatisfiedRange(nil, 0)); got != "bytes */0" {
		t.Errorf("appendUnsatisfiedRange(0) = %q", got)
	}
	if got := string(appendUnsatisfiedRange([]byte("x:"), 12345)); got != "x:bytes */12345" {
		t.Errorf("appendUnsatisfiedRange(12345) = %q", got)
	}
}

// refParseRange is a deliberately plain second implementation of the
// parseRange contract (strings, math/big, no attention to allocation) that
// the fuzz target compares against.
func refParseRange(header string, size int64) ([]span, error) {
	if len(header) > maxRangeHeaderLen {
		return nil, errTooManyRanges
	}
	if size < 0 {
		return nil, errRangeInvalid
	}
	unit, set, ok := strings.Cut(strings.Trim(header, " \t"), "=")
	if !ok || !asciiLowerEqual(unit, "bytes") {
		return nil, errRangeInvalid
	}
	bigSize := big.NewInt(size)
	var spans []span
	specs := 0
	for _, elem := range strings.Split(set, ",") {
		elem = strings.Trim(elem, " \t")
		if elem == "" {
			continue
		}
		specs++
		if specs > maxRangeSpecs {
			return nil, errTooManyRanges
		}
		first, last, ok := strings.Cut(elem, "-")
		if !ok || (first == "" && last == "") || !allDigits(first) || !allDigits(last) {
			return nil, errRangeInvalid
		}
		if first == "" {
			n, _ := new(big.Int).SetString(last, 10)
			if n.Cmp(bigSize) > 0 {
				n = bigSize
			}
			if n.Sign() > 0 {
				spans = append(spans, span{Start: size - n.Int64(), Length: n.Int64()})
			}
			continue
		}
		a, _ := new(big.Int).SetString(first, 10)
		b := big.NewInt(size - 1)
		if last != "" {
			b, _ = new(big.Int).SetString(last, 10)
			if a.Cmp(b) > 0 {
				return nil, errRangeInvalid
			}
		}
		if a.Cmp(bigSize) >= 0 {
			continue
		}
		end := min(b.Int64(), size-1)
		if !b.IsInt64() {
			end = size - 1
		}
		spans = append(spans, span{Start: a.Int64(), Length: end - a.Int64() + 1})
	}
	if specs == 0 {
		return nil, errRangeInvalid
	}
	if len(spans) == 0 {
		return nil, errRangeUnsatisfiable
	}
	slices.SortStableFunc(spans, func(x, y span) int {
		return big.NewInt(x.Start).Cmp(big.NewInt(y.Start))
	})
	var merged []span
	overlaps := 0
	maxEnd := int64(-1)
	for _, s := range spans {
		if s.Start < maxEnd {
			overlaps++
		}
		if len(merged) > 0 && s.Start <= maxEnd {
			maxEnd = max(maxEnd, s.Start+s.Length)
			merged[len(merged)-1].Length = maxEnd - merged[len(merged)-1].Start
			continue
		}
		merged = append(merged, s)
		maxEnd = s.Start + s.Length
	}
	if overlaps > maxRangeOverlaps || len(merged) > maxRanges {
		return nil, errTooManyRanges
	}
	return merged, nil
}

func asciiLowerEqual(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// TestRefParseRange keeps the reference honest: it must agree with the table.
func TestRefParseRange(t *testing.T) {
	for _, tt := range parseRangeTests {
		got, err := refParseRange(tt.header, tt.size)
		if err != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("refParseRange(%q, %d) = %v, %v; want %v, %v", tt.name, tt.size, got, err, tt.want, tt.err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, tt := range parseRangeTests {
		if len(tt.header) <= 512 {
			f.Add(tt.header, tt.size)
		}
	}
	f.Add("bytes=0-0,-1,5-,3-4", int64(10))
	f.Add("bytes=-9223372036854775808", int64(math.MaxInt64))
	f.Add("bytes=9223372036854775808-", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		spans, err := parseRange(nil, []byte(header), size)
		switch err {
		case nil, errRangeInvalid, errRangeUnsatisfiable, errTooManyRanges:
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil {
			if len(spans) != 0 {
				t.Fatalf("error %v with spans %v", err, spans)
			}
		} else {
			if len(spans) == 0 || len(spans) > maxRanges {
				t.Fatalf("%d spans", len(spans))
			}
			for i, s := range spans {
				if s.Start < 0 || s.Length <= 0 || s.Length > size-s.Start {
					t.Fatalf("span %d %+v outside [0, %d)", i, s, size)
				}
				// Merged spans neither overlap nor touch.
				if i > 0 && s.Start <= spans[i-1].End() {
					t.Fatalf("spans %+v and %+v not ascending and disjoint", spans[i-1], s)
				}
			}
		}
		want, wantErr := refParseRange(header, size)
		if err != wantErr || !slices.Equal(spans, want) {
			t.Fatalf("parseRange(%q, %d) = %v, %v; reference says %v, %v", header, size, spans, err, want, wantErr)
		}
	})
}

func BenchmarkParseRange(b *testing.B) {
	for _, bm := range []struct{ name, header string }{
		{"single", "bytes=1048576-2097151"},
		{"suffix", "bytes=-65536"},
		{"multi4", "bytes=0-99, 1000-1999, 500000-, -10"},
		{"disjoint32", rangeList(32)},
		{"invalid", "bytes=5-4"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			h := []byte(bm.header)
			dst := make([]span, 0, maxRangeSpecs)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = parseRange(dst[:0], h, 1<<30)
			}
		})
	}
}
