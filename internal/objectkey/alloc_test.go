//go:build !race

package objectkey

import (
	"strings"
	"testing"
)

// The race detector allocates, so this runs only without it.

func TestObjectKeyAllocatesOnlyTheKey(t *testing.T) {
	for _, raw := range []string{"dir/file.bin", "%E6%8A%A5%E5%91%8A/a%20b.pdf", strings.Repeat("ab/", 300) + "c"} {
		b := []byte(raw)
		if n := testing.AllocsPerRun(100, func() { _, _ = Parse(b) }); n != 1 {
			t.Errorf("ObjectKey(%q) allocates %v times, want 1 (the key)", raw, n)
		}
	}
	for _, raw := range []string{"a/../b", "a%zz", "a%00", ""} {
		b := []byte(raw)
		if n := testing.AllocsPerRun(100, func() { _, _ = Parse(b) }); n != 0 {
			t.Errorf("rejecting ObjectKey(%q) allocates %v times", raw, n)
		}
	}
}
