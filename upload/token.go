package upload

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/objectkey"
)

// Grant is what an upload token allows, stored as a hash at
// <prefix>token:<token> whose key expires with the token. Exactly one of
// Key and Prefix is set.
type Grant struct {
	// Bucket receives the upload; it must be one of Config.Buckets.
	Bucket string
	// Key is the exact object key the upload writes.
	Key string
	// Prefix lets the client choose the key: Prefix + the metadata
	// "filename" (a plain name: no "/", no leading "."), or Prefix + the
	// upload id without one.
	Prefix string
	// FileID is the catalog id the completed file is registered under;
	// empty: the upload id.
	FileID string
	// MaxSize bounds the upload's length; 0: Config.MaxSize.
	MaxSize int64
	// TTL is the token's lifetime (creation only: a started upload
	// resumes with the same token until the upload expires). Required.
	TTL time.Duration
}

func (u *Uploads) tokenKey(tok string) string { return u.cfg.KeyPrefix + "token:" + tok }

// ErrInvalidGrant is wrapped by CreateToken's refusals of a grant (as
// opposed to Redis failures), so that callers such as the admin API answer
// them as the caller's mistake.
var ErrInvalidGrant = errors.New("invalid upload grant")

// CreateToken stores a new upload token for g and returns it. It is how
// backends (and tests, and the admin API) grant an upload; the token is
// 192 random bits.
func (u *Uploads) CreateToken(ctx context.Context, g Grant) (string, error) {
	switch {
	case !slices.Contains(u.cfg.Buckets, g.Bucket):
		return "", fmt.Errorf("upload: token: bucket %q is not in upload.buckets: %w", g.Bucket, ErrInvalidGrant)
	case (g.Key == "") == (g.Prefix == ""):
		return "", fmt.Errorf("upload: token: give exactly one of key and prefix: %w", ErrInvalidGrant)
	case g.Key != "" && !objectkey.Valid(g.Key) || g.Prefix != "" && !objectkey.Valid(g.Prefix+"x"):
		return "", fmt.Errorf("upload: token: key or prefix is not one downloads could name: %w", ErrInvalidGrant)
	case g.MaxSize < 0 || g.MaxSize > u.cfg.MaxSize:
		return "", fmt.Errorf("upload: token: max_size must be between 0 and %d: %w", u.cfg.MaxSize, ErrInvalidGrant)
	case g.TTL < time.Second:
		return "", fmt.Errorf("upload: token: ttl must be at least 1s: %w", ErrInvalidGrant)
	}
	var raw [24]byte
	rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	key := u.tokenKey(tok)
	_, err := u.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "bucket", g.Bucket, "key", g.Key, "prefix", g.Prefix, "file_id", g.FileID,
			"max_size", strconv.FormatInt(g.MaxSize, 10))
		p.Expire(ctx, key, g.TTL)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("upload: token: store: %w", err)
	}
	return tok, nil
}

// errNoToken: the token is unknown or expired.
var errNoToken = errors.New("upload: unknown token")

// grant reads a token's grant. Its errors are errNoToken or a Redis error.
func (u *Uploads) grant(ctx context.Context, tok string) (Grant, error) {
	if tok == "" || len(tok) > 256 {
		return Grant{}, errNoToken
	}
	h, err := u.rdb.HGetAll(ctx, u.tokenKey(tok)).Result()
	if err != nil {
		return Grant{}, fmt.Errorf("upload: token: %w", err)
	}
	if len(h) == 0 {
		return Grant{}, errNoToken
	}
	g := Grant{Bucket: h["bucket"], Key: h["key"], Prefix: h["prefix"], FileID: h["file_id"]}
	if v := h["max_size"]; v != "" {
		g.MaxSize, _ = strconv.ParseInt(v, 10, 64)
	}
	if !slices.Contains(u.cfg.Buckets, g.Bucket) || (g.Key == "") == (g.Prefix == "") {
		return Grant{}, errNoToken // not written by CreateToken: refuse rather than guess
	}
	return g, nil
}

// objectKey is the key an upload created with g writes, or false when the
// client's filename is not a plain name.
func (g Grant) objectKey(id string, meta Metadata) (string, bool) {
	if g.Key != "" {
		return g.Key, true
	}
	name, ok := meta["filename"]
	if !ok || name == "" {
		return g.Prefix + id, true
	}
	if len(name) > 255 || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") || !isPrintableUTF8(name) {
		return "", false
	}
	return g.Prefix + name, true
}

func isPrintableUTF8(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// tokenHash is what state keeps of the creating token.
func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// bearer extracts the token: Authorization: Bearer, then the token query
// parameter (for clients that cannot set headers).
func bearer(auth, query string) string {
	if t, ok := strings.CutPrefix(auth, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return query
}
