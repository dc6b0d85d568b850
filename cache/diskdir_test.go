package cache

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree maps paths under a directory to file contents; a path ending in "/"
// is an empty directory.
type tree map[string]string

func (tr tree) write(t *testing.T, dir string) {
	t.Helper()
	for p, content := range tr {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot lists every entry under dir with the contents of files.
func snapshot(t *testing.T, dir string) tree {
	t.Helper()
	got := tree{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			got[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDiskDirRefusesForeign: a directory that is neither empty nor marked
// by the cache (or marked with a format this build does not read) is
// refused by New and by Check, and every entry in it survives unchanged.
func TestDiskDirRefusesForeign(t *testing.T) {
	cases := []struct {
		name string
		tree tree
		want string
	}{
		{"user file", tree{"notes.txt": "mine"}, "no " + markerName + " marker"},
		{"file in a two-hex subdirectory", tree{"ab/notes.txt": "mine"}, "no " + markerName + " marker"},
		{"chunk-named file", tree{"ab/0000000000000000-0000000000000000-1": "x"}, "no " + markerName + " marker"},
		{"tmp directory", tree{"tmp/chunk-123": "partial", "tmp/keep/": ""}, "no " + markerName + " marker"},
		{"empty tmp directory", tree{"tmp/": ""}, "no " + markerName + " marker"},
		{"lost+found and a file", tree{"lost+found/": "", "notes.txt": "mine"}, "no " + markerName + " marker"},
		{"newer format", tree{markerName: markerMagic + "\nformat 2\n", "ab/notes.txt": "mine", "tmp/x": "y"}, "format 2, this build reads format 1"},
		{"foreign marker", tree{markerName: "something else\n", "ab/notes.txt": "mine"}, "not an edgeproxy cache marker"},
		{"truncated marker", tree{markerName: markerMagic + "\nform"}, "malformed marker"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.tree.write(t, dir)
			before := snapshot(t, dir)
			for name, try := range map[string]func() error{
				"New": func() error {
					cc, err := New(diskConfig(dir), newFakeOrigin(), nil)
					if err == nil {
						cc.Close()
					}
					return err
				},
				"Check": func() error { return Check(diskConfig(dir)) },
			} {
				err := try()
				var de *DiskDirError
				if !errors.As(err, &de) || de.Dir != dir {
					t.Fatalf("%s: err = %v, want a DiskDirError for %s", name, err, dir)
				}
				if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: err %q, want one line with %q", name, err, c.want)
				}
				after := snapshot(t, dir)
				if len(after) != len(before) {
					t.Fatalf("%s changed the directory: %v, was %v", name, after, before)
				}
				for p, content := range before {
					if got, ok := after[p]; !ok || got != content {
						t.Errorf("%s: %s = %q (present %v), want %q", name, p, got, ok, content)
					}
				}
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(diskConfig(path), newFakeOrigin(), nil)
		var de *DiskDirError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "mine" {
			t.Fatalf("file now holds %q", b)
		}
	})
}

// TestDiskDirClaims: a missing or empty directory (a lone lost+found
// counts as empty) is claimed and the marker written; Check alone leaves
// it as it was.
func TestDiskDirClaims(t *testing.T) {
	for _, c := range []struct {
		name string
		tree tree // nil: the directory does not exist
	}{
		{"missing", nil},
		{"empty", tree{}},
		{"lost+found only", tree{"lost+found/": ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "cache")
			if c.tree != nil {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				c.tree.write(t, dir)
			}
			if err := Check(diskConfig(dir)); err != nil {
				t.Fatalf("Check: %v", err)
			}
			_, err := os.Stat(dir)
			if c.tree == nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Check created the directory: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, markerName)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Check wrote the marker: %v", err)
			}

			newTestCache(t, diskConfig(dir), newFakeOrigin(), nil)
			b, err := os.ReadFile(filepath.Join(dir, markerName))
			if err != nil || !bytes.Equal(b, markerContent) {
				t.Fatalf("marker %q, %v", b, err)
			}
			if err := Check(diskConfig(dir)); err != nil {
				t.Fatalf("Check of a claimed directory: %v", err)
			}
		})
	}
}

// TestParseMarker: only the exact marker of this format is accepted.
func TestParseMarker(t *testing.T) {
	bad := []string{
		"",
		markerMagic,
		markerMagic + "\n",
		markerMagic + "\nformat 1",
		markerMagic + "\nformat 2\n",
		markerMagic + "\nformat 0\n",
		markerMagic + "\nformat -1\n",
		markerMagic + "\nformat 01x\n",
		markerMagic + "\nformat 1\nextra",
		markerMagic + "\r\nformat 1\r\n",
		"EDGEPROXY-CACHE\nformat 1\n",
		strings.Repeat("x", maxMarkerSize+1),
	}
	for _, b := range bad {
		if err := parseMarker([]byte(b)); err == nil {
			t.Errorf("parseMarker(%q) accepted", b)
		}
	}
	if err := parseMarker(markerContent); err != nil {
		t.Fatalf("parseMarker(%q) = %v", markerContent, err)
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add(markerContent)
	f.Add([]byte(markerMagic + "\nformat 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if parseMarker(b) == nil && !bytes.Equal(b, markerContent) {
			t.Fatalf("accepted %q", b)
		}
	})
}
