package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"time"
)

// DirConfig configures a local-directory origin.
type DirConfig struct {
	// Root is the directory that holds one subdirectory per bucket.
	// Required; it must exist when NewDir is called.
	Root string `yaml:"root"`
}

// Dir serves objects from a local directory tree: a bucket is a
// subdirectory of Root, a key a slash-separated path inside it. It exists
// for development, tests and small single-host deployments.
//
// Containment: every access goes through an os.Root opened on the bucket's
// directory, so no key and no symbolic link can reach outside that bucket
// (nor, therefore, outside Root). Keys must be clean relative paths
// (fs.ValidPath: no "..", ".", empty or absolute elements); anything else is
// ErrNotFound, as are bucket names outside [A-Za-z0-9._-]{1,255} or
// starting with '.', directories, and files other than regular ones.
//
// ETags are strong and derived from size, modification time in nanoseconds
// and inode (where the platform has one), like nginx's but finer: a rewrite
// that keeps the size, the inode and the nanosecond timestamp goes
// unnoticed; an atomic rename-into-place always changes the inode.
//
// Dir is safe for concurrent use.
type Dir struct {
	root *os.Root
	path string
}

var _ Store = (*Dir)(nil)

// NewDir opens cfg.Root. The directory stays open until Close; if it is
// renamed, Dir follows it.
func NewDir(cfg DirConfig) (*Dir, error) {
	if cfg.Root == "" {
		return nil, errors.New("origin: root: required")
	}
	r, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("origin: root: %w", err)
	}
	return &Dir{root: r, path: cfg.Root}, nil
}

// Close releases the root directory.
func (d *Dir) Close() error {
	return d.root.Close()
}

// Stat returns the file's metadata. ContentType comes from the key's
// extension (mime.TypeByExtension), empty when unknown.
func (d *Dir) Stat(ctx context.Context, bucket, key string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("origin: stat %s/%s: %w", bucket, key, err)
	}
	br, err := d.openBucket(bucket, key)
	if err != nil {
		return Info{}, dirError("stat", bucket, key, err)
	}
	defer br.Close()
	fi, err := br.Stat(key)
	if err != nil {
		return Info{}, dirError("stat", bucket, key, err)
	}
	return fileInfo(fi, key, bucket)
}

// Open opens the file, checks its ETag against etag on the opened file
// itself (so the check and the bytes concern the same inode) and returns a
// reader of bytes [off, off+n).
//
// The reader implements io.WriterTo over an *os.File: io.Copy to a
// *net.TCPConn becomes sendfile(2), and to an *os.File copy_file_range(2).
// Reads check ctx before each call; the kernel copy of WriteTo is not
// interruptible, but it is a local copy that cannot stall on a network.
// If the file shrinks while being read, the reader fails with
// io.ErrUnexpectedEOF rather than deliver fewer than n bytes.
func (d *Dir) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("origin: open %s/%s: bad range off=%d n=%d", bucket, key, off, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("origin: open %s/%s: %w", bucket, key, err)
	}
	br, err := d.openBucket(bucket, key)
	if err != nil {
		return nil, dirError("open", bucket, key, err)
	}
	defer br.Close()
	// Non-blocking, so that a FIFO planted in the tree cannot hang Open;
	// it is rejected below like any non-regular file.
	f, err := br.OpenFile(key, openFlags, 0)
	if err != nil {
		return nil, dirError("open", bucket, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, dirError("open", bucket, key, err)
	}
	info, err := fileInfo(fi, key, bucket)
	if err != nil {
		f.Close()
		return nil, err
	}
	if etag != "" && etag != info.ETag {
		f.Close()
		return nil, fmt.Errorf("origin: open %s/%s: ETag is %s, want %s: %w", bucket, key, info.ETag, etag, ErrChanged)
	}
	if off+n > info.Size {
		f.Close()
		return nil, fmt.Errorf("origin: open %s/%s: range %d+%d beyond size %d: %w", bucket, key, off, n, info.Size, ErrChanged)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, dirError("open", bucket, key, err)
	}
	return &fileRange{ctx: ctx, f: f, lr: io.LimitedReader{R: f, N: n}, name: bucket + "/" + key}, nil
}

// Ping checks that Root still names the directory opened by NewDir and
// that it can be listed.
func (d *Dir) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("origin: ping: %w", err)
	}
	want, err := d.root.Stat(".")
	if err != nil {
		return fmt.Errorf("origin: ping: %w: %w", ErrUnavailable, err)
	}
	got, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("origin: ping: %w: %w", ErrUnavailable, err)
	}
	if !os.SameFile(want, got) {
		return fmt.Errorf("origin: ping: %s was replaced after start: %w", d.path, ErrUnavailable)
	}
	f, err := d.root.Open(".")
	if err != nil {
		return fmt.Errorf("origin: ping: %w: %w", ErrUnavailable, err)
	}
	defer f.Close()
	if _, err := f.ReadDir(1); err != nil && err != io.EOF {
		return fmt.Errorf("origin: ping: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// openBucket validates the names and opens the bucket's directory as its
// own root, so that a symlink in one bucket cannot reach another.
func (d *Dir) openBucket(bucket, key string) (*os.Root, error) {
	if !validBucket(bucket) {
		return nil, errors.New("invalid bucket name")
	}
	if key == "." || !fs.ValidPath(key) {
		return nil, errors.New("invalid key")
	}
	return d.root.OpenRoot(bucket)
}

// validBucket accepts 1 to 255 bytes of [A-Za-z0-9._-], not starting with
// a dot (which also excludes "." and "..", and hidden directories).
func validBucket(b string) bool {
	if b == "" || len(b) > 255 || b[0] == '.' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// fileInfo turns a regular file's FileInfo into Info.
func fileInfo(fi fs.FileInfo, key, bucket string) (Info, error) {
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("origin: %s/%s: not a regular file: %w", bucket, key, ErrNotFound)
	}
	mt := fi.ModTime()
	return Info{
		Size:         fi.Size(),
		ETag:         fmt.Sprintf(`"%x-%x-%x"`, fi.Size(), mt.UnixNano(), inode(fi)),
		LastModified: mt.UTC().Truncate(time.Second),
		ContentType:  mime.TypeByExtension(path.Ext(key)),
	}, nil
}

// dirError wraps a file-system error with the sentinel it means: names that
// do not resolve to a file are ErrNotFound; permissions and I/O failures
// are ErrUnavailable (the origin is misconfigured or failing).
func dirError(op, bucket, key string, err error) error {
	sentinel := ErrNotFound
	if unavailableFSError(err) {
		sentinel = ErrUnavailable
	}
	return fmt.Errorf("origin: %s %s/%s: %w: %w", op, bucket, key, sentinel, err)
}

// fileRange is a length-limited section of an open file.
type fileRange struct {
	ctx  context.Context // Open's; checked by Read
	f    *os.File
	lr   io.LimitedReader // over f, positioned at the range start
	name string
}

func (r *fileRange) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("origin: read %s: %w", r.name, err)
	}
	m, err := r.lr.Read(p)
	if err == io.EOF && r.lr.N > 0 {
		err = r.short()
	}
	return m, err
}

// WriteTo copies the rest of the range to w. Handing io.Copy the
// LimitedReader over the *os.File lets a *net.TCPConn (or a bufio.Writer in
// front of one) use sendfile.
func (r *fileRange) WriteTo(w io.Writer) (int64, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("origin: read %s: %w", r.name, err)
	}
	m, err := io.Copy(w, &r.lr)
	if err == nil && r.lr.N > 0 {
		err = r.short()
	}
	return m, err
}

func (r *fileRange) short() error {
	return fmt.Errorf("origin: read %s: file ended %d bytes short: %w", r.name, r.lr.N, io.ErrUnexpectedEOF)
}

func (r *fileRange) Close() error {
	return r.f.Close()
}
