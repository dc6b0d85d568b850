package checksum

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSHA256(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// FIPS 180-2 test vectors.
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	} {
		got, err := SHA256(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("SHA256(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestSHA256ReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := SHA256(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Fatalf("read error: %v, want %v", err, boom)
	}
}

func TestFileSHA256(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), bufSize/16*3+7) // several buffers and a tail
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if got, err := FileSHA256(name); err != nil || got != hex.EncodeToString(want[:]) {
		t.Fatalf("FileSHA256 = %s, %v; want %x", got, err, want)
	}
	if _, err := FileSHA256(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := FileSHA256(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a directory: %v, want an error naming it", err)
	}
}

// FuzzSHA256: whatever the bytes and however the reader splits them, the
// digest is the one-shot sha256.Sum256 in lowercase hex.
func FuzzSHA256(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("abc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := sha256.Sum256(data)
		got, err := SHA256(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil || got != hex.EncodeToString(want[:]) {
			t.Fatalf("SHA256 = %s, %v; want %x", got, err, want)
		}
	})
}
