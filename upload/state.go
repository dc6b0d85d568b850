package upload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// state is one upload as every node sees it, stored as JSON at
// <prefix>state:<id>. Only the holder of the upload's lock writes it, and
// it writes it after the bytes it describes are durable in S3, so a node
// that reads it (HEAD, a resumed PATCH) never promises bytes that are lost.
type state struct {
	ID     string `json:"id"`
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// FileID is the catalog id the file is registered under when complete.
	FileID string `json:"file_id"`
	// Length is Upload-Length; Offset the bytes committed so far.
	Length   int64  `json:"length"`
	Offset   int64  `json:"offset"`
	Metadata string `json:"metadata,omitempty"` // Upload-Metadata as received
	// S3Upload is the multipart upload id; Parts the parts uploaded, in
	// order (their own list, never ListObjectParts: S3 does not promise a
	// listing is complete).
	S3Upload string `json:"s3_upload"`
	Parts    []part `json:"parts,omitempty"`
	// Tail is the length of the incomplete part (the bytes after the last
	// part) stored as the staging object; TailETag its ETag, so that a node
	// holding a local copy knows it is the current one.
	Tail     int64  `json:"tail,omitempty"`
	TailETag string `json:"tail_etag,omitempty"`
	// Hash is the SHA-256 state (encoding.BinaryMarshaler) of bytes
	// [0, Offset): the next node continues it instead of re-reading.
	Hash []byte `json:"hash,omitempty"`
	// SHA256 is the digest the client declared in metadata (hex), checked
	// at completion; empty when it declared none.
	SHA256      string `json:"sha256,omitempty"`
	Filename    string `json:"filename,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// Partial marks a partial upload of the concatenation extension;
	// Final lists the partial ids a final upload was made of.
	Partial bool     `json:"partial,omitempty"`
	Final   []string `json:"final,omitempty"`
	// TokenHash is the SHA-256 of the token that created the upload: every
	// later request must carry the same token.
	TokenHash string `json:"token_hash"`
	// Expires is when an unfinished upload is given up (Upload-Expires).
	Expires time.Time `json:"expires"`
	// Done is set once the object is complete (and for partials, once
	// their staging object is); Registered once the catalog has it and the
	// purge went out, so a retried request finishes what failed after Done.
	Done       bool `json:"done,omitempty"`
	Registered bool `json:"registered,omitempty"`
}

// part is one uploaded S3 part.
type part struct {
	N    int    `json:"n"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

// partsSize is the bytes held in parts.
func (s *state) partsSize() int64 {
	var n int64
	for _, p := range s.Parts {
		n += p.Size
	}
	return n
}

// stagingKey is the key of the object that holds an upload's incomplete
// part; for a partial upload, also the completed partial's object.
func (u *Uploads) stagingKey(id string) string { return u.cfg.StagingPrefix + id }

// errNoUpload: no state for the id (never created, terminated or expired).
var errNoUpload = errors.New("upload: no such upload")

func (u *Uploads) stateKey(id string) string { return u.cfg.KeyPrefix + "state:" + id }
func (u *Uploads) lockKey(id string) string  { return u.cfg.KeyPrefix + "lock:" + id }

// load reads an upload's state.
func (u *Uploads) load(ctx context.Context, id string) (*state, error) {
	b, err := u.rdb.Get(ctx, u.stateKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNoUpload
	}
	if err != nil {
		return nil, fmt.Errorf("upload: load state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("upload: decode state: %w", err)
	}
	return &st, nil
}

// stateGrace keeps the state this long past its expiry, so that the janitor
// can still tell that a multipart upload belonged to an upload (and abort
// it) and HEAD answers 404 rather than a stale offset.
const stateGrace = time.Hour

// saveLocked writes st; the caller holds its lock.
func (u *Uploads) saveLocked(ctx context.Context, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("upload: encode state: %w", err)
	}
	ttl := time.Until(st.Expires) + stateGrace
	if st.Done {
		ttl = u.cfg.Expiry // a finished upload answers HEAD for a while
	}
	if err := u.rdb.Set(ctx, u.stateKey(st.ID), b, ttl).Err(); err != nil {
		return fmt.Errorf("upload: save state: %w", err)
	}
	return nil
}

// lock is a held per-upload lock: a random token at <prefix>lock:<id>
// with a TTL, renewed while held, released only by its holder.
type lock struct {
	u     *Uploads
	key   string
	token string
	stop  chan struct{}
	done  chan struct{}
	// lost is closed when a renewal finds the lock gone or taken: the
	// holder must stop writing.
	lost chan struct{}
}

// errHeld: another request holds the upload's lock (answered 423).
var errHeld = errors.New("upload: locked by another request")

var (
	// renewScript extends the lock only if this holder still has it.
	renewScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	// releaseScript deletes the lock only if this holder still has it.
	releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// acquire takes the upload's lock or fails with errHeld. The lock is
// renewed every LockTTL/3 until release.
func (u *Uploads) acquire(ctx context.Context, id string) (*lock, error) {
	var raw [16]byte
	rand.Read(raw[:])
	l := &lock{u: u, key: u.lockKey(id), token: base64.RawURLEncoding.EncodeToString(raw[:]),
		stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
	ok, err := u.rdb.SetNX(ctx, l.key, l.token, u.cfg.LockTTL).Result()
	if err != nil {
		return nil, fmt.Errorf("upload: lock: %w", err)
	}
	if !ok {
		return nil, errHeld
	}
	go l.renew()
	return l, nil
}

func (l *lock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.u.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.u.cfg.LockTTL/3)
			n, err := renewScript.Run(ctx, l.u.rdb, []string{l.key}, l.token, l.u.cfg.LockTTL.Milliseconds()).Int()
			cancel()
			if err == nil && n == 0 {
				close(l.lost)
				return
			}
		}
	}
}

// held reports whether the lock is still ours as far as the renewals know.
func (l *lock) held() bool {
	select {
	case <-l.lost:
		return false
	default:
		return true
	}
}

// release stops renewing and deletes the lock if it is still ours.
func (l *lock) release() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	releaseScript.Run(ctx, l.u.rdb, []string{l.key}, l.token)
}

// newID returns a new upload id: 24 random bytes, base64url (idLen).
func newID() string {
	var raw [24]byte
	rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}
