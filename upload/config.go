package upload

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config configures the upload endpoint; the zero value of every field
// means its default. Uploads are off unless Enabled.
type Config struct {
	// Enabled mounts the tus endpoint on the download listener. Default
	// false. It needs Redis (upload state, tokens, locks) and an S3 origin.
	Enabled bool `yaml:"enabled"`
	// Prefix is the path the endpoint answers under: POST Prefix creates an
	// upload, Prefix<id> is an upload's URL. It must start and end with
	// "/". Default "/uploads/".
	Prefix string `yaml:"prefix"`
	// MaxSize is the largest upload accepted (Tus-Max-Size), in bytes; a
	// token may set a smaller one. Default 5 GiB. It may not exceed
	// 10000 x PartSize: S3 allows 10000 parts.
	MaxSize int64 `yaml:"max_size"`
	// PartSize is the size of every S3 part but the last. Larger parts
	// mean fewer requests to the store and fewer parts to list, but more
	// local disk per upload in progress (one part each). Default 8 MiB;
	// at least 5 MiB (S3's minimum) and at most 5 GiB.
	PartSize int64 `yaml:"part_size"`
	// TempDir holds the parts being assembled of each PATCH in progress
	// (three per PATCH: one received while two go to S3, removed when the
	// PATCH ends) and local copies of the last MaxActive staged tails: at
	// most MaxActive x 4 x PartSize. Default: the system's temporary
	// directory.
	TempDir string `yaml:"temp_dir"`
	// MaxActive bounds the PATCH and POST requests carrying bytes that this
	// node serves at once, and with PartSize the disk TempDir needs.
	// Requests beyond it get 503 with Retry-After. Default 64.
	MaxActive int `yaml:"max_active"`
	// Expiry is how long an upload stays resumable after its last byte
	// (tus expiration: Upload-Expires). An expired upload is gone: its
	// state, its S3 multipart upload and its incomplete part. Default 24h.
	Expiry time.Duration `yaml:"expiry"`
	// IdleTimeout aborts a PATCH whose client sends nothing for this long;
	// the bytes received until then are kept. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// LockTTL is how long the per-upload lock lives without being renewed.
	// A node renews it while a PATCH runs; a crashed node's lock frees
	// itself after LockTTL, so a client resuming elsewhere waits at most
	// that long (it gets 423 Locked meanwhile, which tus clients retry).
	// Default 15s.
	LockTTL time.Duration `yaml:"lock_ttl"`
	// StagingPrefix is the key prefix, in the upload's bucket, of the
	// objects that hold incomplete parts (shorter than PartSize) between
	// PATCH requests, so that any node can resume. Default ".tus-staging/".
	StagingPrefix string `yaml:"staging_prefix"`
	// KeyPrefix is the Redis key prefix of upload state, locks and tokens:
	// <prefix>state:<id>, <prefix>lock:<id>, <prefix>token:<token>.
	// Default "upload:".
	KeyPrefix string `yaml:"key_prefix"`
	// RateClass is the limiter class whose rate bounds each client's upload
	// bytes per second; empty: the limiter's default rate. Concurrency per
	// client is the limiter's max_concurrent_per_client, shared with
	// downloads.
	RateClass string `yaml:"rate_class"`
	// JanitorInterval is how often one node (chosen by a Redis lock) aborts
	// S3 multipart uploads and deletes staging objects older than Expiry
	// that no live upload owns: the leftovers of expired uploads and of
	// crashed nodes. Default 10m; negative disables the janitor.
	JanitorInterval time.Duration `yaml:"janitor_interval"`
	// Buckets lists the buckets the janitor sweeps; tokens may name only
	// these. Required.
	Buckets []string `yaml:"buckets"`
	// PurgeChannel is the Redis channel on which a completed upload tells
	// every node to drop its cached copy of the overwritten object.
	// Default "upload:purge".
	PurgeChannel string `yaml:"purge_channel"`
}

// s3MaxParts is S3's limit on the parts of one multipart upload.
const s3MaxParts = 10000

// minPartSize is S3's minimum size of a part that is not the last.
const minPartSize = 5 << 20

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = "/uploads/"
	}
	if c.MaxSize == 0 {
		c.MaxSize = 5 << 30
	}
	if c.PartSize == 0 {
		c.PartSize = 8 << 20
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.MaxActive == 0 {
		c.MaxActive = 64
	}
	if c.Expiry == 0 {
		c.Expiry = 24 * time.Hour
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.LockTTL == 0 {
		c.LockTTL = 15 * time.Second
	}
	if c.StagingPrefix == "" {
		c.StagingPrefix = ".tus-staging/"
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "upload:"
	}
	if c.JanitorInterval == 0 {
		c.JanitorInterval = 10 * time.Minute
	}
	if c.PurgeChannel == "" {
		c.PurgeChannel = "upload:purge"
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") || len(c.Prefix) < 2:
		return fmt.Errorf("upload: prefix: %q must start and end with / and not be /", c.Prefix)
	case c.PartSize < minPartSize || c.PartSize > 5<<30:
		return errors.New("upload: part_size: must be between 5MiB and 5GiB")
	case c.MaxSize < 0 || c.MaxSize > s3MaxParts*c.PartSize:
		return fmt.Errorf("upload: max_size: must be between 0 and 10000 x part_size (%d)", s3MaxParts*c.PartSize)
	case c.MaxActive < 1:
		return errors.New("upload: max_active: must be positive")
	case c.Expiry < time.Minute:
		return errors.New("upload: expiry: must be at least 1m")
	case c.IdleTimeout < 0:
		return errors.New("upload: idle_timeout: must not be negative")
	case c.LockTTL < time.Second:
		return errors.New("upload: lock_ttl: must be at least 1s")
	case len(c.Buckets) == 0:
		return errors.New("upload: buckets: required (the buckets tokens may name and the janitor sweeps)")
	case strings.HasPrefix(c.StagingPrefix, "/"):
		return errors.New("upload: staging_prefix: must not start with /")
	}
	return nil
}
