package upload

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
)

// The tus 1.0.0 protocol's fixed strings (https://tus.io/protocols/resumable-upload).
const (
	tusVersion    = "1.0.0"
	tusExtensions = "creation,creation-with-upload,termination,checksum,expiration,concatenation"
	// tusChecksums are the Upload-Checksum algorithms accepted, in the
	// names of the tus checksum extension (IANA hash names, lower case).
	tusChecksums = "sha256,sha1,md5"
	// offsetOctetStream is the only Content-Type a PATCH (and a POST that
	// carries bytes) may have (tus 1.0.0 "PATCH").
	offsetOctetStream = "application/offset+octet-stream"
)

// Metadata is a parsed Upload-Metadata header: keys and their decoded
// values. A key given without a value maps to "".
type Metadata map[string]string

// maxMetadataPairs bounds the pairs of one Upload-Metadata header; the
// header size bounds it already, this keeps the map small.
const maxMetadataPairs = 32

var errMetadata = errors.New("upload: malformed Upload-Metadata")

// parseMetadata parses Upload-Metadata (tus 1.0.0 "Upload-Metadata"): comma
// separated pairs "key base64value", keys unique, non-empty and without
// spaces or commas, values standard base64 (padding as sent), a pair may
// omit its value. Empty input is no metadata.
func parseMetadata(s string) (Metadata, error) {
	m := Metadata{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		key, val, hasVal := strings.Cut(pair, " ")
		if key == "" || strings.ContainsAny(key, " \t") || !isPrintable(key) {
			return nil, errMetadata
		}
		if _, dup := m[key]; dup {
			return nil, errMetadata
		}
		if len(m) == maxMetadataPairs {
			return nil, errMetadata
		}
		if !hasVal {
			m[key] = ""
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
		if err != nil {
			return nil, errMetadata
		}
		m[key] = string(b)
	}
	return m, nil
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checksum is a parsed Upload-Checksum header: the algorithm's hash and the
// digest the client computed over the request body.
type checksum struct {
	alg    string
	digest []byte
}

var (
	errChecksumAlg    = errors.New("upload: unsupported checksum algorithm")
	errChecksumSyntax = errors.New("upload: malformed Upload-Checksum")
)

// parseChecksum parses Upload-Checksum (tus 1.0.0 checksum extension):
// "<algorithm> <base64 digest>". An unsupported algorithm is
// errChecksumAlg (the protocol answers 400); a digest of the wrong length
// for its algorithm is errChecksumSyntax.
func parseChecksum(s string) (checksum, error) {
	alg, b64, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return checksum{}, errChecksumSyntax
	}
	h := newHash(alg)
	if h == nil {
		return checksum{}, errChecksumAlg
	}
	d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(d) != h.Size() {
		return checksum{}, errChecksumSyntax
	}
	return checksum{alg: alg, digest: d}, nil
}

// newHash returns a new hash of a tus checksum algorithm, nil for others.
func newHash(alg string) hash.Hash {
	switch alg {
	case "sha256":
		return sha256.New()
	case "sha1":
		return sha1.New()
	case "md5":
		return md5.New()
	}
	return nil
}

// concat is a parsed Upload-Concat header (tus 1.0.0 concatenation).
type concat struct {
	partial bool
	// final lists the partial uploads' URLs or ids, in order.
	final []string
}

var errConcat = errors.New("upload: malformed Upload-Concat")

// maxConcatParts bounds the partial uploads of one final upload.
const maxConcatParts = 256

// parseConcat parses Upload-Concat: "partial", or "final;" followed by
// space-separated upload URLs. Each URL's last path segment is the
// partial upload's id, so absolute URLs and paths both work.
func parseConcat(s string) (concat, error) {
	s = strings.TrimSpace(s)
	if s == "partial" {
		return concat{partial: true}, nil
	}
	rest, ok := strings.CutPrefix(s, "final;")
	if !ok {
		return concat{}, errConcat
	}
	var ids []string
	for _, u := range strings.Fields(rest) {
		// An upload URL may carry its credential (?token=, uploads made
		// with a signed URL); the id is the path's last segment.
		u, _, _ = strings.Cut(u, "?")
		u = strings.TrimRight(u, "/")
		id := u[strings.LastIndexByte(u, '/')+1:]
		if !validID(id) {
			return concat{}, errConcat
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 || len(ids) > maxConcatParts {
		return concat{}, errConcat
	}
	return concat{final: ids}, nil
}

// parseLength parses Upload-Length and Upload-Offset: a non-negative decimal
// integer without sign or spaces, at most 18 digits.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// idLen is the length of an upload id: 24 random bytes in base64url, 32
// characters. The id is the upload URL's capability part, never logged
// whole.
const idLen = 32

// validID reports whether s has the shape of an upload id, so that
// anything else is 404 without a Redis read.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
