package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeproxy/edgeproxy/internal/checksum"
	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// fileRequest is the body of PUT /v1/files/{id}.
type fileRequest struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Filename    string `json:"filename,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
}

// s3Flags are file put's origin settings; each falls back to the environment.
type s3Flags struct {
	endpoint string
	secure   bool
	region   string
}

func filePut(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("file put", "[-id ID] -bucket B (-src PATH [-key K] | -key K [-size N] [-sha256 HEX]) [-filename F] [-content-type T]",
		`With -src, uploads PATH to the origin (MinIO/S3) as bucket/key, computing its SHA-256
and size from the bytes sent (the file is read once), then registers it in the catalog.
Without -src, registers an object already in the origin (metadata only).
Without -id (a catalog kept in PostgreSQL), the catalog assigns the id, and content
already in the catalog (same SHA-256; with -src the file is hashed first, so read
twice) is not uploaded again: the existing record is printed.
Prints the registered record as JSON.

-src needs the origin's address and credentials:
  -s3-endpoint or $EDGECTL_S3_ENDPOINT (host:port, or http(s)://host:port)
  $EDGECTL_S3_ACCESS_KEY and $EDGECTL_S3_SECRET_KEY, else $AWS_ACCESS_KEY_ID and
  $AWS_SECRET_ACCESS_KEY (with $AWS_SESSION_TOKEN), else $MINIO_ROOT_USER and $MINIO_ROOT_PASSWORD
The admin API is checked before the upload, so a wrong admin key costs no transfer.`)
	var r fileRequest
	var id, src string
	var s3 s3Flags
	cmd.fs.StringVar(&id, "id", "", "file id in the catalog (default: assigned by the catalog)")
	cmd.fs.StringVar(&r.Bucket, "bucket", "", "origin bucket (required)")
	cmd.fs.StringVar(&src, "src", "", "local file to upload")
	cmd.fs.StringVar(&r.Key, "key", "", "origin object key (default with -src: the base name of PATH)")
	cmd.fs.StringVar(&r.Filename, "filename", "", "name offered to the downloading client (default with -src: the base name of PATH)")
	cmd.fs.StringVar(&r.ContentType, "content-type", "", "media type (default with -src: from PATH's extension, else application/octet-stream)")
	cmd.fs.Int64Var(&r.Size, "size", 0, "size in bytes (without -src)")
	cmd.fs.StringVar(&r.SHA256, "sha256", "", "hex SHA-256 of the content (without -src)")
	cmd.fs.StringVar(&s3.endpoint, "s3-endpoint", "", "origin address (default $EDGECTL_S3_ENDPOINT)")
	cmd.fs.BoolVar(&s3.secure, "s3-secure", false, "use HTTPS to reach the origin")
	cmd.fs.StringVar(&s3.region, "s3-region", "", "origin region (default $EDGECTL_S3_REGION, else asked of the origin)")
	if err := cmd.parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	cmd.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if src != "" {
		if r.Key == "" {
			r.Key = filepath.Base(src)
		}
		if r.Filename == "" {
			r.Filename = filepath.Base(src)
		}
		if r.ContentType == "" {
			r.ContentType = contentTypeOf(src)
		}
	}
	switch {
	case r.Bucket == "" || r.Key == "":
		return cmd.usagef("-bucket and -key (or -src) are required")
	case src != "" && (set["size"] || set["sha256"]):
		return cmd.usagef("-size and -sha256 are computed from -src; give them only without -src")
	case src == "" && (set["s3-endpoint"] || set["s3-secure"] || set["s3-region"]):
		return cmd.usagef("-s3-endpoint, -s3-secure and -s3-region need -src")
	case r.Size < 0:
		return cmd.usagef("-size must not be negative")
	case !objectkey.Valid(r.Key):
		return cmd.usagef("-key %q is not a valid object key (no empty, \".\" or \"..\" segments, no leading or trailing '/', no control characters)", r.Key)
	}
	if r.SHA256 != "" {
		if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != sha256.Size {
			return cmd.usagef("-sha256 must be 64 hex digits")
		}
		r.SHA256 = strings.ToLower(r.SHA256)
	}
	if id == "" {
		return filePutAddressed(ctx, x, r, src, s3)
	}
	path := "/v1/files/" + url.PathEscape(id)
	if src != "" {
		mc, err := s3Client(x.environ, s3)
		if err != nil {
			return cmd.usagef("%v", err)
		}
		f, err := openRegular(src)
		if err != nil {
			return fmt.Errorf("file put: %w", err)
		}
		defer f.Close()
		if err := preflight(ctx, x.api, path); err != nil {
			return fmt.Errorf("file put: admin API, before uploading: %w", err)
		}
		uctx := ctx
		if x.uploadTimeout > 0 {
			var cancel context.CancelFunc
			uctx, cancel = context.WithTimeout(ctx, x.uploadTimeout)
			defer cancel()
		}
		if r.SHA256, r.Size, err = uploadFile(uctx, mc, f, r.Bucket, r.Key, r.ContentType); err != nil {
			return fmt.Errorf("file put: %w", err)
		}
	}
	if err := x.api.do(ctx, http.MethodPut, path, r, nil); err != nil {
		if src != "" {
			return fmt.Errorf("file put: uploaded s3://%s/%s but could not register it; register it with\n"+
				"  edgectl file put -id %s -bucket %s -key %s -size %d -sha256 %s -filename %s -content-type %s\n%w",
				r.Bucket, r.Key, shellQuote(id), shellQuote(r.Bucket), shellQuote(r.Key), r.Size, r.SHA256,
				shellQuote(r.Filename), shellQuote(r.ContentType), err)
		}
		return err
	}
	return json.NewEncoder(x.stdout).Encode(struct {
		ID string `json:"id"`
		fileRequest
	}{id, r})
}

// filePutAddressed registers r under an id the catalog assigns, uploading
// src first unless its content is already in the catalog.
func filePutAddressed(ctx context.Context, x *cli, r fileRequest, src string, s3 s3Flags) error {
	var found []json.RawMessage
	if src != "" {
		f, err := openRegular(src)
		if err != nil {
			return fmt.Errorf("file put: %w", err)
		}
		defer f.Close()
		sum, err := checksum.SHA256(f)
		if err != nil {
			return fmt.Errorf("file put: hash %s: %w", src, err)
		}
		if err := x.api.do(ctx, http.MethodGet, "/v1/files?sha256="+sum, nil, &found); err != nil {
			return fmt.Errorf("file put: admin API, before uploading: %w", err)
		}
		if len(found) > 0 { // content addressing: stored already
			_, err := fmt.Fprintf(x.stdout, "%s\n", found[0])
			return err
		}
		mc, err := s3Client(x.environ, s3)
		if err != nil {
			return usagef("file put: %v", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("file put: %w", err)
		}
		uctx := ctx
		if x.uploadTimeout > 0 {
			var cancel context.CancelFunc
			uctx, cancel = context.WithTimeout(ctx, x.uploadTimeout)
			defer cancel()
		}
		if r.SHA256, r.Size, err = uploadFile(uctx, mc, f, r.Bucket, r.Key, r.ContentType); err != nil {
			return fmt.Errorf("file put: %w", err)
		}
		if r.SHA256 != sum {
			return fmt.Errorf("file put: %s changed between hashing and uploading; not registered", src)
		}
	}
	var out json.RawMessage
	if err := x.api.do(ctx, http.MethodPost, "/v1/files", r, &out); err != nil {
		return fmt.Errorf("file put: %w", err)
	}
	_, err := fmt.Fprintf(x.stdout, "%s\n", out)
	return err
}

func fileList(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("file list", "[-after ID] [-limit N]",
		"Prints catalog records in id order as a JSON array (a catalog kept in PostgreSQL);\n"+
			"page with -after set to the last id printed.")
	after := cmd.fs.Int64("after", 0, "print ids greater than this")
	limit := cmd.fs.Int("limit", 100, "at most this many records (1..1000)")
	if err := cmd.parse(args); err != nil {
		return err
	}
	if *after < 0 || *limit < 1 || *limit > 1000 {
		return cmd.usagef("-after must not be negative and -limit takes 1..1000")
	}
	return x.api.print(ctx, fmt.Sprintf("/v1/files?after=%d&limit=%d", *after, *limit), x.stdout)
}

func fileRm(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("file rm", "ID", "Removes a file from the catalog (the object in the origin and its access counts stay);\n"+
		"every edge node stops serving it. Exits 1 with not_found when there is none.")
	id, err := cmd.oneArg(args, "file id")
	if err != nil {
		return err
	}
	return x.api.do(ctx, http.MethodDelete, "/v1/files/"+url.PathEscape(id), nil, nil)
}

func fileGet(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("file get", "ID", "Prints a file's catalog record as JSON; exits 1 with not_found when there is none.")
	id, err := cmd.oneArg(args, "file id")
	if err != nil {
		return err
	}
	return x.api.print(ctx, "/v1/files/"+url.PathEscape(id), x.stdout)
}

// preflight checks that the admin API accepts our key and serves the
// catalog (the file may or may not exist yet) before a long upload.
func preflight(ctx context.Context, api *client, path string) error {
	err := api.do(ctx, http.MethodGet, path, nil, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "not_found" {
		return nil
	}
	return err
}

// openRegular opens a regular file for reading: uploading a pipe or a
// device would need a size nobody knows in advance.
func openRegular(name string) (*os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// uploadFile streams f from its start to bucket/key and returns the hex
// SHA-256 and the size of exactly the bytes the origin received.
func uploadFile(ctx context.Context, mc *minio.Client, f *os.File, bucket, key, contentType string) (string, int64, error) {
	src := f.Name()
	before, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	size := before.Size()
	sum, n, err := putHashed(ctx, mc, f, size, bucket, key, contentType)
	if err != nil {
		return "", 0, fmt.Errorf("upload %s to s3://%s/%s: %w", src, bucket, key, err)
	}
	after, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if n != size || after.Size() != size || !after.ModTime().Equal(before.ModTime()) {
		return "", 0, fmt.Errorf("upload %s to s3://%s/%s: the file changed during the upload (%d bytes at the start, %d sent); not registered",
			src, bucket, key, size, n)
	}
	return sum, size, nil
}

// putHashed uploads size bytes of r and returns their hex SHA-256 and the
// number of bytes read, computed from the one pass of r that is sent.
func putHashed(ctx context.Context, mc *minio.Client, r io.Reader, size int64, bucket, key, contentType string) (string, int64, error) {
	h := sha256.New()
	var n countWriter
	// The TeeReader hides *os.File's ReaderAt and Seeker on purpose: given a
	// ReaderAt, minio-go uploads large files as sections read in parallel,
	// and given a Seeker it rewinds to retry a request. Either would feed
	// the hash bytes out of order or twice. As a plain reader the file is
	// read once, in order, and every byte read is a byte sent.
	body := io.TeeReader(r, io.MultiWriter(h, &n))
	info, err := mc.PutObject(ctx, bucket, key, body, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return "", 0, err
	}
	if info.Size != size {
		return "", 0, fmt.Errorf("the origin stored %d bytes of %d", info.Size, size)
	}
	return hex.EncodeToString(h.Sum(nil)), int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// s3Credentials lists where the origin's credentials may come from, in
// order; the first source whose access key is set is used, whole, so that
// a key and a secret from different sources are never mixed.
var s3Credentials = []struct{ access, secret, session string }{
	{"EDGECTL_S3_ACCESS_KEY", "EDGECTL_S3_SECRET_KEY", ""},
	{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
	{"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", ""},
}

// s3Settings is the origin's address and credentials, resolved from file
// put's flags and the environment.
type s3Settings struct {
	host, region                 string
	secure                       bool
	access, secret, sessionToken string
	accessVar                    string // where the credentials came from, for messages
}

// resolveS3 applies the flags and the environment's fallbacks.
func resolveS3(environ []string, fl s3Flags) (s3Settings, error) {
	var st s3Settings
	ep := fl.endpoint
	if ep == "" {
		ep = getenv(environ, "EDGECTL_S3_ENDPOINT")
	}
	if ep == "" {
		return st, errors.New("-src needs the origin address: -s3-endpoint or $EDGECTL_S3_ENDPOINT")
	}
	host, secure, err := parseEndpoint(ep)
	if err != nil {
		return st, err
	}
	if ep != host && !secure && fl.secure {
		return st, fmt.Errorf("-s3-secure contradicts endpoint %q", ep)
	}
	st.host, st.secure = host, secure || fl.secure
	for _, s := range s3Credentials {
		ak := getenv(environ, s.access)
		if ak == "" {
			continue
		}
		sk := getenv(environ, s.secret)
		if sk == "" {
			return st, fmt.Errorf("$%s is set but $%s is not", s.access, s.secret)
		}
		st.access, st.secret, st.accessVar = ak, sk, s.access
		if s.session != "" {
			st.sessionToken = getenv(environ, s.session)
		}
		break
	}
	if st.access == "" {
		return st, errors.New("-src needs origin credentials: $EDGECTL_S3_ACCESS_KEY and $EDGECTL_S3_SECRET_KEY")
	}
	st.region = fl.region
	if st.region == "" {
		st.region = getenv(environ, "EDGECTL_S3_REGION")
	}
	return st, nil
}

// s3Client builds the origin client from flags and the environment.
func s3Client(environ []string, fl s3Flags) (*minio.Client, error) {
	st, err := resolveS3(environ, fl)
	if err != nil {
		return nil, err
	}
	mc, err := minio.New(st.host, &minio.Options{
		Creds:  credentials.NewStaticV4(st.access, st.secret, st.sessionToken),
		Secure: st.secure,
		Region: st.region,
	})
	if err != nil {
		return nil, fmt.Errorf("origin %q: %w", st.host, err)
	}
	return mc, nil
}

// parseEndpoint accepts "host[:port]" or "http(s)://host[:port]" (a
// trailing slash allowed) and returns the host and whether the scheme asks
// for TLS.
func parseEndpoint(s string) (host string, secure bool, err error) {
	bad := fmt.Errorf("origin endpoint %q: want host:port or http(s)://host:port", s)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", false, bad
		}
		s, secure = u.Host, u.Scheme == "https"
	}
	if s == "" || strings.ContainsAny(s, "/?#@ \t\r\n\\") {
		return "", false, bad
	}
	return s, secure, nil
}

// contentTypeOf guesses a media type from a file name's extension.
func contentTypeOf(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// shellQuote quotes s for a POSIX shell when it needs it, for the command
// printed when registration fails after an upload.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+,@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
