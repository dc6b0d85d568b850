package config

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	bad := []struct {
		in, err string
	}{
		{"", `invalid size "": empty`},
		{"   ", `invalid size "   ": empty`},
		{"-1", `invalid size "-1": negative`},
		{"-1KiB", `invalid size "-1KiB": negative`},
		{"+1", `invalid size "+1"`},
		{"2GB2", `invalid size "2GB2"`},
		{"lots", `invalid size "lots"`},
		{"GiB", `invalid size "GiB"`},
		{"1.", `invalid size "1."`},
		{".5KiB", `invalid size ".5KiB"`},
		{"1e9", `invalid size "1e9"`},
		{"1_000", `invalid size "1_000"`},
		{"0x10", `invalid size "0x10"`},
		{"1,000", `invalid size "1,000"`},
		{"1  KiB", `invalid size "1  KiB"`},
		{"1\tKiB", `invalid size "1\tKiB"`},
		{"100k", `invalid size "100k": ambiguous unit "k", write KB (1000) or KiB (1024)`},
		{"2G", `invalid size "2G": ambiguous unit "G", write GB (1000) or GiB (1024)`},
		{"1KiBs", `invalid size "1KiBs"`},
		{"1PiB", `invalid size "1PiB"`},
		{"1\u212aB", "invalid size \"1\u212aB\""}, // Kelvin sign, which Unicode folds to k
		{"1.5B", `invalid size "1.5B": not a whole number of bytes`},
		{"0.3KiB", `invalid size "0.3KiB": not a whole number of bytes`},
		{"9223372036854775808", `invalid size "9223372036854775808": too large`},
		{"8388608TiB", `invalid size "8388608TiB": too large`},
		{"9223372.036854775808TB", `invalid size "9223372.036854775808TB": too large`},
		{strings.Repeat("1", 65), `invalid size "` + strings.Repeat("1", 65) + `": too long`},
	}
	for _, tc := range bad {
		n, err := ParseSize(tc.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want error %q", tc.in, n, tc.err)
			continue
		}
		if got, want := err.Error(), "config: "+tc.err; got != want {
			t.Errorf("ParseSize(%q) error = %q, want %q", tc.in, got, want)
		}
	}

	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1048576},
		{"007", 7},
		{"1 ", 1},
		{" 2GiB ", 2 << 30},
		{"512MiB", 512 << 20},
		{"512 MiB", 512 << 20},
		{"1.5GB", 1_500_000_000},
		{"1.5gib", 3 << 29},
		{"0.5KiB", 512},
		{"1Kb ", 1000},
		{"1kB", 1000},
		{"1KIB", 1024},
		{"3TB", 3e12},
		{"3TiB", 3 << 40},
		{"10B", 10},
		{"10b", 10},
		{"1.000GB", 1e9},
		{"0.000000001GB", 1},
		{"9223372036854775807", math.MaxInt64},
		{"9223372036854775807B", math.MaxInt64},
		{"8388607TiB", 8388607 << 40},
	}
	for _, tc := range good {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseSize checks that ParseSize never panics, never returns a negative
// number, and agrees with strconv for plain decimal input.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "2GiB", "1.5GB", "100k", "-1", "2GB2", "9223372036854775808", "0.5KiB", " 1 kb "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			if !strings.HasPrefix(err.Error(), "config: invalid size ") {
				t.Fatalf("ParseSize(%q) error %q lacks the usual prefix", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, n)
		}
		trimmed := strings.TrimSpace(s)
		if trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
			if want, err := strconv.ParseInt(trimmed, 10, 64); err != nil || want != n {
				t.Fatalf("ParseSize(%q) = %d, strconv says %d, %v", s, n, want, err)
			}
		}
	})
}
