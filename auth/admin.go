package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// TokenSpec describes a token to create.
type TokenSpec struct {
	FileID string
	UserID string
	// AllowedIP lists IPs and CIDR prefixes the token may be used from;
	// empty: any address.
	AllowedIP []string
	// MaxUses is how many download sessions the token allows; 0: unlimited.
	MaxUses int
	// Rate is a bandwidth limit in bytes per second; 0: none.
	Rate int64
	// TTL is the token's lifetime; 0: Config.DefaultTTL. At most Config.MaxTTL.
	TTL time.Duration
}

// tokenBytes is the entropy of a created token: 192 bits, 32 characters.
const tokenBytes = 24

// Create stores a new token in the hash form and returns it with its
// expiry (whole seconds; both the expires_at field and the key's expiry are
// set to it). The token is 192 random bits, base64url without padding.
func (v *Verifier) Create(ctx context.Context, spec TokenSpec) (string, time.Time, error) {
	rec, err := v.specRecord(spec)
	if err != nil {
		return "", time.Time{}, err
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: create: random: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])

	ttl := spec.TTL
	if ttl == 0 {
		ttl = v.cfg.DefaultTTL
	}
	rec.ExpiresAt = time.Now().Add(ttl).Truncate(time.Second)

	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	key := v.key(token)
	_, err = v.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, rec.fields())
		p.ExpireAt(ctx, key, rec.ExpiresAt)
		return nil
	})
	if err != nil {
		return "", time.Time{}, v.adminErr("create", err)
	}
	return token, rec.ExpiresAt, nil
}

// adminTimeout bounds admin calls: operators wait for them, requests do not.
const adminTimeout = 5 * time.Second

func (v *Verifier) specRecord(spec TokenSpec) (Record, error) {
	bad := func(field string, val any, why string) error {
		return fmt.Errorf("auth: token spec %s=%v: %s: %w", field, val, why, ErrInvalidSpec)
	}
	r := Record{FileID: spec.FileID, UserID: spec.UserID, MaxUses: spec.MaxUses, Rate: spec.Rate}
	switch {
	case spec.FileID == "":
		return Record{}, bad("file_id", `""`, "required")
	case spec.MaxUses < 0:
		return Record{}, bad("max_uses", spec.MaxUses, "must not be negative")
	case spec.Rate < 0:
		return Record{}, bad("rate", spec.Rate, "must not be negative")
	case spec.TTL < 0 || (spec.TTL > 0 && spec.TTL < time.Second):
		return Record{}, bad("ttl", spec.TTL, "must be at least 1s")
	case spec.TTL > v.cfg.MaxTTL:
		return Record{}, bad("ttl", spec.TTL, "exceeds max_ttl "+v.cfg.MaxTTL.String())
	}
	for _, s := range spec.AllowedIP {
		p, err := parsePrefix(s)
		if err != nil {
			return Record{}, bad("allowed_ip", s, err.Error())
		}
		r.AllowedIP = append(r.AllowedIP, p)
	}
	return r, nil
}

// Revoke deletes the token and broadcasts the revocation, so every Verifier
// drops it from its cache within a second. When the token does not exist it
// still broadcasts (a stale cache may hold it) and returns ErrTokenNotFound.
func (v *Verifier) Revoke(ctx context.Context, token string) error {
	if token == "" {
		return refuse(ErrTokenMissing, nil)
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	n, err := v.client.Del(ctx, v.key(token)).Result()
	v.invalidate(token) // this process first, whatever happens next
	if err != nil {
		return v.adminErr("revoke", err)
	}
	if err := v.client.Publish(ctx, v.cfg.RevokeChannel, token).Err(); err != nil {
		return v.adminErr("revoke: publish", err)
	}
	if n == 0 {
		return ErrTokenNotFound
	}
	return nil
}

func (v *Verifier) adminErr(op string, err error) error {
	e := refuse(ErrAuthUnavailable, fmt.Errorf("%s: %w", op, err))
	e.RetryAfter = v.cfg.RetryAfter
	return e
}
