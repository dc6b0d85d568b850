package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// The disk tier deletes what it does not recognise in its directory
// (interrupted writes under tmp/, stray entries in the 256 subdirectories).
// That is safe only in a directory the cache created, so the cache claims
// a directory only when it is provably its own:
//
//   - it does not exist yet, or is empty (a lone lost+found, which a fresh
//     file system has at its root, counts as empty): the cache creates it
//     if needed and writes the marker file before anything else;
//   - or it holds the marker file markerName, written by the cache, whose
//     format version this build reads.
//
// Anything else (a home directory, "/", a directory of another program, a
// marker of an unknown or newer format) is refused with a DiskDirError
// and nothing in it is read, created or removed. The marker's version is
// the layout of the directory (marker, tmp/, 256 two-hex subdirectories,
// file names): a build that cannot read a layout must not scan, and so
// delete, its files. Chunk files carry their own format in their name
// (".v2", diskfile.go), so a new chunk format needs no new marker: files of
// an older format are recognised by name and discarded at start.
const (
	markerName    = "EDGEPROXY-CACHE"
	markerMagic   = "edgeproxy-cache"
	diskFormat    = 1
	maxMarkerSize = 256
)

// markerContent is what the cache writes into a directory it claims.
var markerContent = []byte(markerMagic + "\nformat " + strconv.Itoa(diskFormat) + "\n")

// DiskDirError reports a disk directory the cache refuses to use. Nothing
// in the directory has been changed.
type DiskDirError struct {
	Dir    string
	Reason string // why, in words an operator can act on
}

func (e *DiskDirError) Error() string {
	return fmt.Sprintf("cache: disk_dir %q %s", e.Dir, e.Reason)
}

// dirState is what checkDiskDir found.
type dirState int

const (
	dirMissing dirState = iota // does not exist: create it, then write the marker
	dirEmpty                   // exists, empty: write the marker
	dirOurs                    // holds a marker of a format this build reads
)

// checkDiskDir inspects dir without changing anything and says whether the
// cache may claim it.
func checkDiskDir(dir string) (dirState, error) {
	refuse := func(reason string) (dirState, error) {
		return 0, &DiskDirError{Dir: dir, Reason: reason}
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dirMissing, nil
	case err != nil:
		return refuse(fmt.Sprintf("cannot be inspected: %v", err))
	case !info.IsDir():
		return refuse("is not a directory")
	}
	marker, err := readMarker(filepath.Join(dir, markerName))
	switch {
	case err == nil:
		if err := parseMarker(marker); err != nil {
			return refuse(fmt.Sprintf("has a %s file this build cannot use (%v); refusing to touch it", markerName, err))
		}
		return dirOurs, nil
	case !errors.Is(err, fs.ErrNotExist):
		return refuse(fmt.Sprintf("cannot be inspected: %v", err))
	}
	empty, err := isEmptyDir(dir)
	if err != nil {
		return refuse(fmt.Sprintf("cannot be inspected: %v", err))
	}
	if !empty {
		return refuse("is not empty and has no " + markerName + " marker, so it is not a cache directory; " +
			"refusing to use it, since the cache deletes files it does not recognise there (use an empty or new directory)")
	}
	return dirEmpty, nil
}

// claimDiskDir makes dir the cache's own: it checks it (checkDiskDir),
// then creates it and writes the marker if it was missing or empty.
func claimDiskDir(dir string) error {
	state, err := checkDiskDir(dir)
	if err != nil || state == dirOurs {
		return err
	}
	if state == dirMissing {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cache: create disk_dir %q: %w", dir, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, markerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		// Another process claimed it between the check and now: accept
		// its marker only if it is one this build reads.
		_, err = checkDiskDir(dir)
		return err
	}
	if err != nil {
		return fmt.Errorf("cache: write disk_dir marker: %w", err)
	}
	_, err = f.Write(markerContent)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: write disk_dir marker: %w", err)
	}
	return nil
}

// readMarker reads at most maxMarkerSize+1 bytes of the marker file.
func readMarker(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxMarkerSize+1))
}

// parseMarker accepts exactly the marker this build writes: the magic line
// and "format 1". Another version, newer or older, is an error, so the
// cache never scans (and deletes from) a layout it does not know.
func parseMarker(b []byte) error {
	if len(b) > maxMarkerSize {
		return errors.New("marker too long")
	}
	magic, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok || string(magic) != markerMagic {
		return errors.New("not an edgeproxy cache marker")
	}
	line, rest, ok := bytes.Cut(rest, []byte("\n"))
	v, found := bytes.CutPrefix(line, []byte("format "))
	if !ok || !found || len(rest) != 0 {
		return errors.New("malformed marker")
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 || strconv.Itoa(n) != string(v) {
		return errors.New("malformed format version")
	}
	if n != diskFormat {
		return fmt.Errorf("format %d, this build reads format %d", n, diskFormat)
	}
	return nil
}

// isEmptyDir reports whether dir has no entries besides a lost+found
// directory.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ents, err := f.ReadDir(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch len(ents) {
	case 0:
		return true, nil
	case 1:
		return ents[0].Name() == "lost+found" && ents[0].IsDir(), nil
	}
	return false, nil
}
