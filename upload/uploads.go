package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/logging"
	"github.com/edgeproxy/edgeproxy/limiter"
	"github.com/edgeproxy/edgeproxy/origin"
)

// Registry records a completed file so that downloads find it:
// auth.Catalog implements it (file:meta:<id> in Redis).
type Registry interface {
	Put(ctx context.Context, m auth.FileMeta) error
}

// Purger drops this node's cached copies of an object (the cache
// implements it). Completed uploads purge on every node through Redis
// (Config.PurgeChannel); Subscribe delivers those purges here.
type Purger interface {
	Purge(bucket, key string) int
}

// Store hands out the minio-go clients the endpoint writes through.
// origin.S3 implements it over the nodes of the origin pool; a multipart
// upload id is valid on every node of a distributed MinIO, so an upload
// outlives the node it started on.
type Store interface {
	// Core returns the client of a node that is up now, for one call that
	// is not retried. The endpoint never keeps the result.
	Core() *minio.Core
	// Do runs op, one idempotent S3 call, with retries after transient
	// failures, each on a node not tried yet when there is one, then with
	// back-off; it stops at once when ctx ends. op must build its request
	// body afresh on each run. It returns op's last error unwrapped.
	Do(ctx context.Context, op func(*minio.Core) error) error
}

var _ Store = (*origin.S3)(nil)

// Deps are what the endpoint is wired to.
type Deps struct {
	// Redis holds upload state, locks and tokens. Required.
	Redis redis.UniversalClient
	// S3 is the origin the bytes go to, through minio-go's Core API.
	// Required.
	S3 Store
	// Catalog, when set, registers completed files.
	Catalog Registry
	// Purger, when set, is purged of an object a completed upload replaced.
	Purger Purger
	// Signer, when set, lets signed URLs authorise creations beside
	// tokens (auth.Signer: the keys of auth.signer). Without it a signed
	// creation URL is refused. SetSigner replaces it (a reload's new keys).
	Signer URLSigner
	// Limiter, when set, admits each client's byte-carrying requests
	// (max_concurrent_per_client) and shapes their bodies to the client's
	// rate (Config.RateClass).
	Limiter *limiter.Limiter
	// Logger receives errors, with component=upload; nil discards them
	// (internal/logging's policy).
	Logger *slog.Logger
	// Now is the clock of expiry decisions. Default time.Now.
	Now func() time.Time
}

// Uploads is the tus endpoint. Create it with New; it is safe for
// concurrent use.
type Uploads struct {
	cfg     Config
	rdb     redis.UniversalClient
	store   Store
	catalog Registry
	purger  Purger
	signer  atomic.Pointer[URLSigner] // nil, or a non-nil URLSigner
	limiter *limiter.Limiter
	rate    int64 // resolved Config.RateClass for limiter.Shape; 0: the default rate
	log     *slog.Logger
	now     func() time.Time
	// active bounds byte-carrying requests on this node (Config.MaxActive).
	active chan struct{}
	// tails keeps local copies of tails this node staged.
	tails *tailCache
}

// New validates cfg and builds the endpoint. It does not contact Redis or
// the store.
func New(cfg Config, deps Deps) (*Uploads, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Redis == nil || deps.S3 == nil {
		return nil, errors.New("upload: needs redis (redis.addrs) and an s3 origin (origin.kind s3)")
	}
	if fi, err := os.Stat(cfg.TempDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("upload: temp_dir: %q is not a directory", cfg.TempDir)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	u := &Uploads{cfg: cfg, rdb: deps.Redis, store: deps.S3, catalog: deps.Catalog, purger: deps.Purger,
		limiter: deps.Limiter, log: logging.For(deps.Logger, "upload"), now: deps.Now,
		active: make(chan struct{}, cfg.MaxActive), tails: newTailCache(cfg.MaxActive)}
	u.SetSigner(deps.Signer)
	if cfg.RateClass != "" {
		if u.limiter == nil {
			return nil, fmt.Errorf("upload: rate_class %q needs the limiter", cfg.RateClass)
		}
		r, err := u.limiter.ClassRate(cfg.RateClass)
		if err != nil {
			return nil, fmt.Errorf("upload: rate_class: %w", err)
		}
		u.rate = r
	}
	return u, nil
}

// s3 is the client of the next S3 operation (see Store).
func (u *Uploads) s3() *minio.Core { return u.store.Core() }

// Close deletes the local copies of staged tails. The staging objects
// stay: any node resumes from them.
func (u *Uploads) Close() error {
	u.tails.closeAll()
	return nil
}

// SetSigner makes s check the signed creation URLs from now on; nil
// refuses them all. Creations under way keep the signer they began with;
// uploads already created are unaffected either way (their credential is
// in their state).
func (u *Uploads) SetSigner(s URLSigner) {
	if s == nil {
		u.signer.Store(nil)
		return
	}
	u.signer.Store(&s)
}

// Prefix is the path prefix the endpoint answers under.
func (u *Uploads) Prefix() string { return u.cfg.Prefix }

// Config returns the configuration in effect, defaults filled in.
func (u *Uploads) Config() Config { return u.cfg }

// clientID is the limiter identity of a client address.
func (u *Uploads) clientID(client netip.Addr) string {
	return u.limiter.ClientID(client, "")
}
