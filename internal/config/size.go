package config

import (
	"fmt"
	"math/big"
	"strings"
)

// sizeUnits maps a lower-cased unit to its multiplier.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// maxSizeLen bounds the text ParseSize looks at, so that a hostile value
// cannot make it do big-number arithmetic on megabytes of digits.
const maxSizeLen = 64

// ParseSize parses a byte count written for people, such as "2GiB", "512MiB",
// "1.5GB" or "1048576".
//
// The accepted form is exactly: a decimal number (digits, optionally followed
// by "." and more digits; no sign, exponent or digit separators), then
// optionally one space, then an optional unit. Leading and trailing white
// space is ignored. Units are case-insensitive ASCII:
//
//	B or none        bytes
//	KB MB GB TB      1000, 1000^2, 1000^3, 1000^4 bytes
//	KiB MiB GiB TiB  1024, 1024^2, 1024^3, 1024^4 bytes
//
// A fraction is allowed when the result is a whole number of bytes: "1.5GB" is
// 1500000000 and "0.5KiB" is 512, but "1.5B" and "0.3KiB" are errors.
// One-letter units ("100k", "2G") are errors because tools disagree on them
// (nginx reads k as 1024, others as 1000); write KB or KiB. Negative numbers,
// results above math.MaxInt64 and anything else are errors.
func ParseSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	return n, nil
}

// parseSize is ParseSize with errors that do not name the package, so that
// the decoder can put them after a key.
func parseSize(s string) (int64, error) {
	bad := func(why string) error {
		if why == "" {
			return fmt.Errorf("invalid size %q", s)
		}
		return fmt.Errorf("invalid size %q: %s", s, why)
	}
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return 0, bad("empty")
	case len(t) > maxSizeLen:
		return 0, bad("too long")
	case t[0] == '-':
		return 0, bad("negative")
	}
	i := digits(t, 0)
	whole := t[:i]
	if whole == "" {
		return 0, bad("")
	}
	frac := ""
	if i < len(t) && t[i] == '.' {
		j := digits(t, i+1)
		frac = t[i+1 : j]
		if frac == "" {
			return 0, bad("")
		}
		i = j
	}
	unit := t[i:]
	if strings.HasPrefix(unit, " ") {
		unit = unit[1:]
	}
	lower, ok := asciiLower(unit)
	if !ok {
		return 0, bad("")
	}
	mult, ok := sizeUnits[lower]
	if !ok {
		if len(lower) == 1 && strings.Contains("kmgt", lower) {
			u := strings.ToUpper(lower)
			return 0, bad(fmt.Sprintf("ambiguous unit %q, write %sB (1000) or %siB (1024)", unit, u, u))
		}
		return 0, bad("")
	}
	// value = whole.frac * mult, computed exactly.
	num, _ := new(big.Int).SetString(whole+frac, 10)
	num.Mul(num, big.NewInt(mult))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := num.QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		return 0, bad("not a whole number of bytes")
	}
	if !q.IsInt64() {
		return 0, bad("too large")
	}
	return q.Int64(), nil
}

// digits returns the index of the first non-digit in s at or after i.
func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// asciiLower lower-cases s if it holds only ASCII letters. Unicode folding is
// avoided on purpose: strings.ToLower turns the Kelvin sign into "k".
func asciiLower(s string) (string, bool) {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z':
		default:
			return "", false
		}
	}
	return string(b), true
}
