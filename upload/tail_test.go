package upload

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTailCache: at most max copies are kept (oldest deleted from disk),
// a copy is handed over only for the ETag and length asked, and a stale
// one is deleted.
func TestTailCache(t *testing.T) {
	dir := t.TempDir()
	c := newTailCache(2)
	file := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	c.put("a", file("a"), "ea", 1, 11)
	c.put("b", file("b"), "eb", 2, 12)
	c.put("c", file("c"), "ec", 3, 13)
	if exists("a") || !exists("b") || !exists("c") {
		t.Fatal("the oldest copy was not evicted from disk")
	}
	if _, _, ok := c.take("b", "other", 2); ok || exists("b") {
		t.Fatal("a stale copy was handed over or kept")
	}
	f, crc, ok := c.take("c", "ec", 3)
	if !ok || f.Name() != filepath.Join(dir, "c") || crc != 13 {
		t.Fatalf("take(c) = %v, %d, %v; want c's file and checksum 13", f, crc, ok)
	}
	if _, _, ok := c.take("c", "ec", 3); ok {
		t.Fatal("a copy was handed over twice")
	}
	f.Close()
	c.put("d", file("d"), "ed", 4, 14)
	c.closeAll()
	if exists("d") {
		t.Fatal("closeAll left a copy")
	}
}
