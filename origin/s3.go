package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeproxy/edgeproxy/internal/disposition"
)

// S3Config configures an S3-compatible origin (MinIO, AWS S3, ...). The zero
// value of every field but Endpoint means its default.
type S3Config struct {
	// Endpoint is the store's host:port, without scheme. Required.
	Endpoint string `yaml:"endpoint"`
	// AccessKey and SecretKey sign requests (AWS signature v4). When both
	// are empty they are taken from the environment: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY if both are set, else MINIO_ROOT_USER and
	// MINIO_ROOT_PASSWORD if both are set, else requests go unsigned
	// (anonymous, for public buckets; PresignGet then fails). Setting only
	// one of the two is an error. Keep them out of config files where you
	// can: the environment is the intended place.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// Secure selects HTTPS (TLS 1.2 or later, system roots).
	Secure bool `yaml:"secure"`
	// CAFile, with Secure, is a PEM bundle of the certificate authorities
	// trusted for the store's certificate instead of the system roots (a
	// MinIO with certificates of a private CA). Default: system roots.
	CAFile string `yaml:"ca_file"`
	// Region signs requests. Default "us-east-1", which is what MinIO
	// uses; set it for an AWS bucket elsewhere. It is never looked up: a
	// lookup would cost a request per bucket and hide misconfiguration.
	Region string `yaml:"region"`
	// ConnectTimeout bounds a TCP connect and a TLS handshake. Default 3s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout bounds the wait for response headers of one attempt of Stat,
	// Open or Ping; exceeding it fails with ErrTimeout and is not retried.
	// It does not bound streaming a body: a long download may take as long
	// as its ctx allows. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns caps the connections to the store, idle and in use. Requests
	// beyond it wait for a free connection (bounded by their ctx), which
	// protects the origin from a stampede of cache misses. Default 256.
	MaxConns int `yaml:"max_conns"`
	// Retries is how many times a failed Stat or Open is tried again, only
	// after a transient failure: connection refused or reset, 5xx, SlowDown.
	// Never after 404, 412 or another 4xx, nor after a timeout (the caller
	// has already waited Timeout once). Default 2; negative means none.
	Retries int `yaml:"retries"`
	// RetryBackoff is the wait before the first retry, doubled for each
	// next one (capped at 2s), half of it randomised so that edges do not
	// retry in lockstep. Default 50ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// PingBucket, when set, makes Ping check that this bucket exists (one
	// HEAD); otherwise Ping lists buckets, which needs the
	// s3:ListAllMyBuckets permission that narrowly scoped keys lack.
	PingBucket string `yaml:"ping_bucket"`
}

// Defaults of S3Config.
const (
	DefaultRegion         = "us-east-1"
	DefaultConnectTimeout = 3 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultMaxConns       = 256
	DefaultRetries        = 2
	DefaultRetryBackoff   = 50 * time.Millisecond
)

// S3 reads objects from an S3-compatible store through minio-go, with its
// own transport (timeouts, connection cap) and retry policy. It is safe for
// concurrent use.
type S3 struct {
	core       *minio.Core
	transport  *http.Transport
	retry      retrier
	timeout    time.Duration
	pingBucket string
	anonymous  bool
}

var (
	_ Store     = (*S3)(nil)
	_ Presigner = (*S3)(nil)
)

// NewS3 validates cfg, fills its defaults and returns a store. It does not
// contact the store; use Ping for that.
func NewS3(cfg S3Config) (*S3, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	tr := newTransport(cfg)
	if err := setRootCAs(tr, cfg); err != nil {
		return nil, err
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Transport: tr,
		Region:    cfg.Region,
		// One attempt per call: retrier is the only retry loop.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("origin: endpoint: %w", err)
	}
	retries := cfg.Retries
	if retries < 0 {
		retries = 0
	}
	return &S3{
		core:       core,
		transport:  tr,
		retry:      retrier{retries: retries, base: cfg.RetryBackoff},
		timeout:    cfg.Timeout,
		pingBucket: cfg.PingBucket,
		anonymous:  cfg.AccessKey == "",
	}, nil
}

// normalize fills defaults and credentials and reports the first bad field.
func (cfg *S3Config) normalize() error {
	if cfg.Endpoint == "" {
		return errors.New("origin: endpoint: required")
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return fmt.Errorf("origin: endpoint: %q has a scheme; want host:port (set secure for TLS)", cfg.Endpoint)
	}
	if host, port, err := net.SplitHostPort(cfg.Endpoint); err != nil || host == "" || port == "" {
		return fmt.Errorf("origin: endpoint: %q is not host:port", cfg.Endpoint)
	}
	switch {
	case cfg.AccessKey != "" && cfg.SecretKey == "":
		return errors.New("origin: secret_key: required with access_key")
	case cfg.AccessKey == "" && cfg.SecretKey != "":
		return errors.New("origin: access_key: required with secret_key")
	case cfg.AccessKey == "":
		cfg.AccessKey, cfg.SecretKey = envPair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
		if cfg.AccessKey == "" {
			cfg.AccessKey, cfg.SecretKey = envPair("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
		}
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"connect_timeout", &cfg.ConnectTimeout, DefaultConnectTimeout},
		{"timeout", &cfg.Timeout, DefaultTimeout},
		{"retry_backoff", &cfg.RetryBackoff, DefaultRetryBackoff},
	} {
		if *d.v < 0 {
			return fmt.Errorf("origin: %s: %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxConns < 0 {
		return fmt.Errorf("origin: max_conns: %d is negative", cfg.MaxConns)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	return nil
}

// envPair returns both variables, or two empty strings unless both are set.
func envPair(idVar, secretVar string) (string, string) {
	id, secret := os.Getenv(idVar), os.Getenv(secretVar)
	if id == "" || secret == "" {
		return "", ""
	}
	return id, secret
}

func newTransport(cfg S3Config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// No proxy from the environment: the origin is the edge's own
		// backend, and an HTTP_PROXY meant for something else must not
		// silently reroute it.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          cfg.MaxConns,
		MaxIdleConnsPerHost:   cfg.MaxConns,
		MaxConnsPerHost:       cfg.MaxConns,
		IdleConnTimeout:       90 * time.Second,
		// Range bodies must arrive byte for byte as stored: no transparent
		// gzip that would change lengths.
		DisableCompression: true,
		ReadBufferSize:     64 << 10,
	}
	if cfg.Secure {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return tr
}

// Core is the store's minio-go client, with this store's transport and
// credentials, for the upload endpoint: it writes (multipart uploads),
// which Store does not.
func (s *S3) Core() *minio.Core { return s.core }

// Close releases idle connections. In-flight readers stay usable.
func (s *S3) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Stat returns the object's current metadata (one HEAD, retried on
// transient failures).
func (s *S3) Stat(ctx context.Context, bucket, key string) (Info, error) {
	var oi minio.ObjectInfo
	err := s.retry.do(ctx, func() error {
		var err error
		oi, err = s.core.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return Info{}, s3Error("stat", bucket, key, err)
	}
	if oi.ETag == "" {
		return Info{}, fmt.Errorf("origin: stat %s/%s: store sent no ETag: %w", bucket, key, ErrUnavailable)
	}
	return Info{
		Size:         oi.Size,
		ETag:         `"` + oi.ETag + `"`,
		LastModified: oi.LastModified.UTC().Truncate(time.Second),
		ContentType:  oi.ContentType,
	}, nil
}

// Open issues one ranged GET (retried on transient failures before any byte
// is read) with If-Match when etag is set, and returns once the store has
// answered, so that ErrNotFound and ErrChanged come from Open itself.
//
// ctx governs the whole stream: cancelling it aborts a Read in progress.
// The reader yields exactly n bytes and then io.EOF; a body that ends early
// fails with io.ErrUnexpectedEOF. Closing it before the end drops the
// connection (it is not drained) and frees its slot under MaxConns.
func (s *S3) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("origin: open %s/%s: bad range off=%d n=%d", bucket, key, off, n)
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+n-1); err != nil {
		return nil, fmt.Errorf("origin: open %s/%s: %w", bucket, key, err)
	}
	want := strings.Trim(etag, `"`)
	if want != "" {
		if err := opts.SetMatchETag(want); err != nil {
			return nil, fmt.Errorf("origin: open %s/%s: %w", bucket, key, err)
		}
	}
	var (
		body io.ReadCloser
		oi   minio.ObjectInfo
	)
	err := s.retry.do(ctx, func() error {
		var err error
		body, oi, _, err = s.core.GetObject(ctx, bucket, key, opts)
		return err
	})
	if err != nil {
		return nil, s3Error("open", bucket, key, err)
	}
	// Stores that ignore If-Match or Range must not slip a different
	// version or the wrong bytes past the cache.
	if want != "" && oi.ETag != want {
		body.Close()
		return nil, fmt.Errorf("origin: open %s/%s: store sent ETag %q, want %q: %w", bucket, key, oi.ETag, want, ErrChanged)
	}
	if oi.Size >= 0 && oi.Size != n {
		body.Close()
		return nil, fmt.Errorf("origin: open %s/%s: store sent %d bytes for a %d-byte range: %w", bucket, key, oi.Size, n, ErrUnavailable)
	}
	return &s3Body{body: body, left: n, n: n, bucket: bucket, key: key}, nil
}

// s3Body is an object's response body limited to the n bytes asked for.
type s3Body struct {
	body        io.ReadCloser
	left, n     int64
	bucket, key string
}

func (b *s3Body) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	m, err := b.body.Read(p)
	b.left -= int64(m)
	switch {
	case b.left == 0:
		return m, io.EOF
	case err == io.EOF:
		return m, fmt.Errorf("origin: read %s/%s: body ended after %d of %d bytes: %w",
			b.bucket, b.key, b.n-b.left, b.n, io.ErrUnexpectedEOF)
	case err != nil:
		return m, s3Error("read", b.bucket, b.key, err)
	}
	return m, nil
}

// Close releases the connection; before the end of the body it drops it.
func (b *s3Body) Close() error {
	return b.body.Close()
}

// Ping makes one request bounded by Timeout: a HEAD of PingBucket when set,
// else a bucket listing. It does not retry: readiness should reflect now.
func (s *S3) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.pingBucket == "" {
		if _, err := s.core.ListBuckets(ctx); err != nil {
			return pingError(err)
		}
		return nil
	}
	ok, err := s.core.BucketExists(ctx, s.pingBucket)
	if err != nil {
		return pingError(err)
	}
	if !ok {
		return fmt.Errorf("origin: ping: bucket %q does not exist: %w", s.pingBucket, ErrUnavailable)
	}
	return nil
}

// pingError maps like classify, except that a "not found" or "changed"
// answer to a ping still means the store is not usable as configured.
func pingError(err error) error {
	sentinel := classify(err)
	if sentinel == ErrNotFound || sentinel == ErrChanged {
		sentinel = ErrUnavailable
	}
	if sentinel == nil {
		return fmt.Errorf("origin: ping: %w", err)
	}
	return fmt.Errorf("origin: ping: %w: %w", sentinel, err)
}

// PresignGet returns a signed GET URL valid for ttl (1s to 7 days). It
// computes a signature locally and makes no request, so it does not check
// that the object exists. With filename set, the URL carries
// response-content-disposition so the store answers with an RFC 6266
// attachment header, built by the same sanitiser as the proxy's own
// responses (internal/disposition).
func (s *S3) PresignGet(ctx context.Context, bucket, key string, ttl time.Duration, filename string) (string, error) {
	if s.anonymous {
		return "", fmt.Errorf("origin: presign %s/%s: no credentials configured", bucket, key)
	}
	params := url.Values{}
	if filename != "" {
		params.Set("response-content-disposition", string(disposition.Append(nil, filename)))
	}
	u, err := s.core.PresignedGetObject(ctx, bucket, key, ttl, params)
	if err != nil {
		return "", fmt.Errorf("origin: presign %s/%s: %w", bucket, key, err)
	}
	return u.String(), nil
}
