//go:build !race

package disposition

import (
	"strings"
	"testing"
)

// The race detector allocates, so this runs only without it.

func TestAppendDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, name := range []string{"report.pdf", "dir/报告 2026.pdf", strings.Repeat("é", 300) + ".pdf", "a\r\n\"b\""} {
		if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], name) }); n != 0 {
			t.Errorf("Append(%q) allocates %v times", name, n)
		}
	}
}
