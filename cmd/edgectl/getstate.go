package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgeproxy/edgeproxy/internal/byteranges"
)

// getState is what FILE.edgectl holds between runs of edgectl get: which
// version of which object FILE is a partial copy of, and which of its bytes
// are on disk. It is rewritten atomically, and only after the bytes it
// claims were fsync'd, so after a crash or kill -9 it never claims a byte
// the file does not hold.
type getState struct {
	// URL identifies the object: the download URL without its query, so
	// that a fresh token or signature resumes the same download, and
	// never holding a token.
	URL string `json:"url"`
	// ETag is the strong validator of the version being fetched; every
	// range request carries it in If-Range.
	ETag string `json:"etag"`
	// Size is the object's length in bytes.
	Size int64 `json:"size"`
	// Done lists the byte spans [start, end) on disk.
	Done [][2]int64 `json:"done"`
}

// stateSuffix names the state file beside the output.
const stateSuffix = ".edgectl"

// urlIdentity is u without query, fragment or user info: what a state file
// may record about the URL.
func urlIdentity(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment, c.User = "", "", "", nil
	return c.String()
}

// list is Done as spans, as the file has them.
func (st *getState) list() []span {
	s := make([]span, 0, len(st.Done))
	for _, d := range st.Done {
		s = append(s, span{Start: d[0], End: d[1]})
	}
	return s
}

// spans is the set Done claims; loadState has checked it is well-formed.
func (st *getState) spans() *byteranges.Set {
	s := new(byteranges.Set)
	for _, sp := range st.list() {
		s.Add(sp)
	}
	return s
}

func (st *getState) setSpans(s *byteranges.Set) {
	st.Done = st.Done[:0]
	for _, sp := range s.Spans() {
		st.Done = append(st.Done, [2]int64{sp.Start, sp.End})
	}
}

// loadState reads a state file; a missing file is (nil, nil). A state
// file that does not parse or claims spans outside the object is an error:
// resuming from it could splice garbage into the output.
func loadState(path string) (*getState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st getState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if st.URL == "" || !isStrongETag(st.ETag) || st.Size < 0 {
		return nil, fmt.Errorf("state %s: missing url, strong etag or size", path)
	}
	if err := byteranges.Check(st.list(), st.Size); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return &st, nil
}

// saveState replaces path with st atomically (see writeFileAtomic).
func saveState(path string, st *getState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic replaces path with b: a temporary file, fsync'd,
// renamed over path, then the directory fsync'd so that the rename itself
// survives a crash. A reader sees the old content or the new, never a mix.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// removeState deletes the state file durably (the directory is fsync'd),
// so that a run killed after it never resumes from the old version.
func removeState(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isStrongETag reports whether v is a strong entity tag (RFC 9110 8.8.3):
// a quoted string without the W/ prefix. Only a strong tag makes If-Range
// safe for splicing ranges of one version (RFC 9110 13.1.5).
func isStrongETag(v string) bool {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	for i := 1; i < len(v)-1; i++ {
		c := v[i]
		if c == '"' || c < 0x21 || c == 0x7f { // etagc: %x21 / %x23-7E / obs-text
			return false
		}
	}
	return true
}

var errBadContentRange = errors.New("bad Content-Range")

// parseContentRange parses a 206 response's "bytes first-last/complete"
// (RFC 9110 14.4). The complete length must be known: a download needs it.
func parseContentRange(v string) (first, last, size int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, errBadContentRange
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, errBadContentRange
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, errBadContentRange
	}
	first, err1 := parseDigits(a)
	last, err2 := parseDigits(b)
	size, err3 := parseDigits(total)
	if err1 != nil || err2 != nil || err3 != nil || first > last || last >= size {
		return 0, 0, 0, errBadContentRange
	}
	return first, last, size, nil
}

// parseDigits accepts 1*DIGIT only: no sign, no spaces, no overflow.
func parseDigits(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, errBadContentRange
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBadContentRange
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
