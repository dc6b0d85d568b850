package main

import (
	"bytes"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// The bar draws name, counts and rate, and finish returns (complete or
// aborted) without waiting on the ticker forever.
func TestProgressBar(t *testing.T) {
	for _, ok := range []bool{true, false} {
		var buf bytes.Buffer
		var pos atomic.Int64
		b := newProgressBar(&buf, "file.iso", pos.Load)
		b.setTotal(10 << 20)
		pos.Store(5 << 20)
		b.set(5 << 20)
		b.finish(ok, 10<<20)
		out := buf.String()
		if ok && (!strings.Contains(out, "file.iso") || !strings.Contains(out, "10.0 MiB / 10.0 MiB")) {
			t.Fatalf("complete bar: %q", out)
		}
	}
	if isTerminal(&bytes.Buffer{}) || isTerminal(os.NewFile(^uintptr(0), "bad")) {
		t.Fatal("isTerminal of a buffer or a bad file")
	}
}
