//go:build !race

package proxy

import (
	"testing"
	"time"
)

// The race detector allocates, so these run only without it.

func TestEvaluateDoesNotAllocate(t *testing.T) {
	lm := time.Date(2026, time.March, 4, 10, 20, 30, 0, time.UTC)
	cases := []conditions{
		{IfMatch: []byte(`"a", W/"b" , "abc"`), IfNoneMatch: []byte(`"x", "y"`), IfRange: []byte(`"abc"`), HasRange: true},
		{IfUnmodifiedSince: []byte("Sunday, 06-Nov-94 08:49:37 GMT"), IfModifiedSince: []byte("Wed Mar  4 10:20:30 2026")},
		{IfNoneMatch: []byte(`W/"abc"`)},
		{IfModifiedSince: []byte("Wed, 04 Mar 2026 10:20:30 GMT"), IfRange: []byte("Wed, 04 Mar 2026 10:20:30 GMT"), HasRange: true},
		{IfMatch: []byte(`garbage`), IfModifiedSince: []byte("not a date")},
	}
	for i := range cases {
		c := &cases[i]
		if n := testing.AllocsPerRun(100, func() { evaluate(c, true, `"abc"`, lm, lm.Add(time.Hour)) }); n != 0 {
			t.Errorf("evaluate(%+v) allocates %v times", c, n)
		}
	}
}

func TestHostTableLookupDoesNotAllocate(t *testing.T) {
	tab := testHostTable(t)
	for _, host := range []string{"FILES.example.com:8080", "a.b.x.eu.cdn.example.com.", "[::1]:8080", "nowhere.example.net", ""} {
		b := []byte(host)
		if n := testing.AllocsPerRun(100, func() { tab.Lookup(b) }); n != 0 {
			t.Errorf("Lookup(%q) allocates %v times", host, n)
		}
	}
}
