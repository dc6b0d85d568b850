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

	"github.com/edgeproxy/edgeproxy/internal/disposition"
)

// S3Config configures an S3-compatible origin (MinIO, AWS S3, ...). The zero
// value of every field but Endpoint means its default.
type S3Config struct {
	// Endpoint is the store's host:port, without scheme: one node, or a
	// load balancer in front of several. Endpoint or Endpoints is required.
	Endpoint string `yaml:"endpoint"`
	// Endpoints lists the nodes of one distributed MinIO deployment (or
	// several gateways to the same data), host:port each, at most 64. The
	// edge spreads requests over the healthy ones, checks each one's
	// /minio/health/live, ejects one that fails or is slow, and retries a
	// failed request on another (see pool.go). Setting both Endpoint and
	// Endpoints is an error unless Endpoints is exactly [Endpoint].
	Endpoints []string `yaml:"endpoints"`
	// HealthInterval is the period of the active checks. Default 5s: a
	// dead node stops receiving requests within one interval even when
	// none of them has failed on it yet.
	HealthInterval time.Duration `yaml:"health_interval"`
	// EjectAfter is how many transient failures or slow answers in a row
	// eject an endpoint. Default 3; lower ejects faster on a blip.
	EjectAfter int `yaml:"eject_after"`
	// EjectTime is the first ejection's length, doubled at each ejection
	// in a row up to MaxEjectTime. Defaults 5s and 5m.
	EjectTime    time.Duration `yaml:"eject_time"`
	MaxEjectTime time.Duration `yaml:"max_eject_time"`
	// SlowThreshold: an answer whose headers took longer counts as a
	// failure for ejection (it is still used). Default 5s, half Timeout.
	SlowThreshold time.Duration `yaml:"slow_threshold"`
	// AccessKey and SecretKey sign requests (AWS signature v4). The
	// credentials are the first complete pair found in this order (see
	// creds.go): these two keys (setting only one is an error); the
	// environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY with
	// AWS_SESSION_TOKEN, then MINIO_ROOT_USER/MINIO_ROOT_PASSWORD, then
	// MINIO_ACCESS_KEY/MINIO_SECRET_KEY); CredentialsFile; MCConfigFile.
	// With none, requests go unsigned (anonymous, for public buckets;
	// PresignGet then fails). Keep keys out of config files where you can.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// CredentialsFile is an AWS shared credentials file (INI) read for
	// Profile (default AWS_PROFILE, else "default"). Default none: a
	// developer's ~/.aws/credentials must not sign requests to MinIO
	// unless asked for.
	CredentialsFile string `yaml:"credentials_file"`
	Profile         string `yaml:"profile"`
	// MCConfigFile is a MinIO client (mc) config.json read for alias
	// MCAlias (default "s3"). Default none.
	MCConfigFile string `yaml:"mc_config_file"`
	MCAlias      string `yaml:"mc_alias"`
	// STS, when enabled, uses the pair found above only to ask the store's
	// STS API (AssumeRole) for temporary credentials, and signs with those,
	// renewing them before they expire.
	STS STSConfig `yaml:"sts"`
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
	// Retries is how many times a failed Stat, Open or Do is tried again, only
	// after a transient failure: connection refused or reset, 5xx, SlowDown.
	// Never after 404, 412 or another 4xx, nor after a timeout (the caller
	// has already waited Timeout once). With several endpoints a retry goes
	// to one this request has not tried, at once; RetryBackoff applies only
	// once all were tried. Default 2; negative means none.
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
// own transport (timeouts, connection cap), retry policy and, over several
// endpoints, a pool that spreads, checks and fails over (pool.go). It is
// safe for concurrent use.
type S3 struct {
	pool       *pool
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
// contact the store (use Ping for that) but starts the endpoints' health
// checks, which Close stops.
func NewS3(cfg S3Config) (*S3, error) {
	s, err := newS3(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	s.pool.start()
	return s, nil
}

// newS3 is NewS3 without the health-check loop, on the clock now.
func newS3(cfg S3Config, now func() time.Time) (*S3, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	tr := newTransport(cfg)
	if err := setRootCAs(tr, cfg); err != nil {
		return nil, err
	}
	p := &pool{
		now:         now,
		ejectAfter:  cfg.EjectAfter,
		ejectTime:   cfg.EjectTime,
		maxEject:    cfg.MaxEjectTime,
		slow:        cfg.SlowThreshold,
		doubtWindow: max(minDoubtWindow, 2*cfg.HealthInterval),
		hc:          &http.Client{Transport: tr, Timeout: min(cfg.Timeout, cfg.HealthInterval)},
		scheme:      "http",
		interval:    cfg.HealthInterval,
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if cfg.Secure {
		p.scheme = "https"
	}
	// The endpoints exist before the first dial (an STS request may come
	// first), their clients once the credentials do.
	for _, ep := range cfg.Endpoints {
		p.eps = append(p.eps, &endpoint{addr: ep})
	}
	tr.DialContext = p.watchDials(tr.DialContext)
	creds, anonymous, err := newCredentials(cfg, &http.Client{Transport: tr, Timeout: cfg.Timeout}, now)
	if err != nil {
		return nil, err
	}
	for _, e := range p.eps {
		core, err := minio.NewCore(e.addr, &minio.Options{
			Creds:     creds,
			Secure:    cfg.Secure,
			Transport: tr,
			Region:    cfg.Region,
			// One attempt per call: the pool is the only retry loop.
			MaxRetries: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("origin: endpoint %s: %w", e.addr, err)
		}
		e.core = core
	}
	retries := cfg.Retries
	if retries < 0 {
		retries = 0
	}
	return &S3{
		pool:       p,
		transport:  tr,
		retry:      retrier{retries: retries, base: cfg.RetryBackoff},
		timeout:    cfg.Timeout,
		pingBucket: cfg.PingBucket,
		anonymous:  anonymous,
	}, nil
}

// maxEndpoints bounds Endpoints (a request's tried set is one uint64).
const maxEndpoints = 64

// normalize fills defaults and reports the first bad field. After it,
// Endpoints holds every endpoint (Endpoint included).
func (cfg *S3Config) normalize() error {
	switch {
	case cfg.Endpoint == "" && len(cfg.Endpoints) == 0:
		return errors.New("origin: endpoint: required")
	case cfg.Endpoint != "" && len(cfg.Endpoints) > 0 &&
		(len(cfg.Endpoints) != 1 || cfg.Endpoints[0] != cfg.Endpoint):
		return errors.New("origin: endpoints: set with endpoint; keep only endpoints")
	case len(cfg.Endpoints) > maxEndpoints:
		return fmt.Errorf("origin: endpoints: %d listed, at most %d", len(cfg.Endpoints), maxEndpoints)
	case len(cfg.Endpoints) == 0:
		cfg.Endpoints = []string{cfg.Endpoint}
	}
	seen := make(map[string]bool, len(cfg.Endpoints))
	for _, ep := range cfg.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return err
		}
		if seen[ep] {
			return fmt.Errorf("origin: endpoints: %q listed twice", ep)
		}
		seen[ep] = true
	}
	switch {
	case cfg.AccessKey != "" && cfg.SecretKey == "":
		return errors.New("origin: secret_key: required with access_key")
	case cfg.AccessKey == "" && cfg.SecretKey != "":
		return errors.New("origin: access_key: required with secret_key")
	}
	if err := cfg.STS.normalize(); err != nil {
		return err
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
		{"health_interval", &cfg.HealthInterval, DefaultHealthInterval},
		{"eject_time", &cfg.EjectTime, DefaultEjectTime},
		{"max_eject_time", &cfg.MaxEjectTime, DefaultMaxEjectTime},
		{"slow_threshold", &cfg.SlowThreshold, DefaultSlowThreshold},
	} {
		if *d.v < 0 {
			return fmt.Errorf("origin: %s: %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxEjectTime < cfg.EjectTime {
		return fmt.Errorf("origin: max_eject_time: %v is below eject_time %v", cfg.MaxEjectTime, cfg.EjectTime)
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"max_conns", &cfg.MaxConns, DefaultMaxConns},
		{"eject_after", &cfg.EjectAfter, DefaultEjectAfter},
	} {
		if *n.v < 0 {
			return fmt.Errorf("origin: %s: %d is negative", n.name, *n.v)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	return nil
}

// checkEndpoint reports an endpoint that is not host:port.
func checkEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		return fmt.Errorf("origin: endpoint: %q has a scheme; want host:port (set secure for TLS)", ep)
	}
	if host, port, err := net.SplitHostPort(ep); err != nil || host == "" || port == "" {
		return fmt.Errorf("origin: endpoint: %q is not host:port", ep)
	}
	return nil
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

// Core returns the minio-go client of a healthy endpoint, chosen as for a
// read (fewest requests in flight, round robin among equals; any endpoint
// when none is healthy), with this store's transport and credentials. It
// exists for the upload endpoint, which writes (multipart uploads) and so
// cannot go through Store. Call it once per operation and do not keep the
// result: a multipart upload id is valid on every node of a distributed
// MinIO, so each part may go to a different node, and an operation after
// a node died goes to one that is up.
func (s *S3) Core() *minio.Core { return s.pool.pick(0).core }

// Close stops the health checks and releases idle connections. In-flight
// readers stay usable.
func (s *S3) Close() error {
	s.pool.close()
	s.transport.CloseIdleConnections()
	return nil
}

// Endpoints returns each endpoint's state and counters, for metrics.
func (s *S3) Endpoints() []EndpointStat {
	return s.pool.stats()
}

// Stat returns the object's current metadata (one HEAD, retried on
// transient failures, on another endpoint when there is one).
func (s *S3) Stat(ctx context.Context, bucket, key string) (Info, error) {
	var oi minio.ObjectInfo
	err := s.pool.do(ctx, s.retry, func(e *endpoint) error {
		var err error
		oi, err = e.core.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
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
// is read, on another endpoint when there is one) with If-Match when etag
// is set, and returns once the store has answered, so that ErrNotFound and
// ErrChanged come from Open itself.
//
// ctx governs the whole stream: cancelling it aborts a Read in progress.
// The reader yields exactly n bytes and then io.EOF. When the connection
// fails mid-body, the reader resumes from the byte reached with a new
// ranged GET, on another endpoint when there is one, with If-Match on the
// ETag of the first answer, so that bytes of two versions never mix; only
// when that fails too does Read fail (io.ErrUnexpectedEOF for a short
// body). Closing it before the end drops the connection (it is not
// drained) and frees its slot under MaxConns.
func (s *S3) Open(ctx context.Context, bucket, key, etag string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("origin: open %s/%s: bad range off=%d n=%d", bucket, key, off, n)
	}
	b := &s3Body{s: s, ctx: ctx, bucket: bucket, key: key, etag: strings.Trim(etag, `"`), off: off, n: n, left: n}
	if err := b.open(0); err != nil {
		return nil, err
	}
	return b, nil
}

// maxResumes bounds how often one body resumes after mid-stream failures.
const maxResumes = 8

// s3Body is an object's response body limited to the n bytes asked for,
// resuming on another endpoint when the connection fails.
type s3Body struct {
	s           *S3
	ctx         context.Context
	bucket, key string
	etag        string // If-Match; set from the first answer when empty
	off, n      int64  // the range asked for
	left        int64  // bytes not yet returned
	body        io.ReadCloser
	ep          *endpoint // serving body; its inflight counts the stream
	resumes     int
}

// open GETs the bytes not yet read, skipping the endpoints in tried.
func (b *s3Body) open(tried uint64) error {
	start := b.off + b.n - b.left
	var opts minio.GetObjectOptions
	if err := opts.SetRange(start, b.off+b.n-1); err != nil {
		return fmt.Errorf("origin: open %s/%s: %w", b.bucket, b.key, err)
	}
	if b.etag != "" {
		if err := opts.SetMatchETag(b.etag); err != nil {
			return fmt.Errorf("origin: open %s/%s: %w", b.bucket, b.key, err)
		}
	}
	var (
		body io.ReadCloser
		oi   minio.ObjectInfo
		ep   *endpoint
	)
	err := b.s.pool.doFrom(b.ctx, b.s.retry, tried, b.s.pool.slow, func(e *endpoint) error {
		var err error
		body, oi, _, err = e.core.GetObject(b.ctx, b.bucket, b.key, opts)
		ep = e
		return err
	})
	if err != nil {
		return s3Error("open", b.bucket, b.key, err)
	}
	// Stores that ignore If-Match or Range must not slip a different
	// version or the wrong bytes past the cache.
	if b.etag != "" && oi.ETag != b.etag {
		body.Close()
		return fmt.Errorf("origin: open %s/%s: store sent ETag %q, want %q: %w", b.bucket, b.key, oi.ETag, b.etag, ErrChanged)
	}
	if oi.Size >= 0 && oi.Size != b.left {
		body.Close()
		return fmt.Errorf("origin: open %s/%s: store sent %d bytes for a %d-byte range: %w", b.bucket, b.key, oi.Size, b.left, ErrUnavailable)
	}
	b.etag = oi.ETag
	b.body, b.ep = body, ep
	ep.inflight.Add(1)
	return nil
}

func (b *s3Body) Read(p []byte) (int, error) {
	for {
		if b.left <= 0 {
			return 0, io.EOF
		}
		if b.body == nil {
			return 0, fmt.Errorf("origin: read %s/%s: %w", b.bucket, b.key, os.ErrClosed)
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		m, err := b.body.Read(p)
		b.left -= int64(m)
		switch {
		case b.left == 0:
			return m, io.EOF
		case err == nil:
			return m, nil
		case m > 0:
			// Hand over what arrived; the failure shows on the next Read.
			b.failed(err)
			return m, nil
		}
		if rerr := b.resume(err); rerr != nil {
			return 0, rerr
		}
	}
}

// failed keeps err for the next Read by swapping in a reader that returns it.
func (b *s3Body) failed(err error) {
	b.body = errBody{body: b.body, err: err}
}

// resume replaces a failed body with one from another endpoint, or returns
// the error Read should fail with.
func (b *s3Body) resume(err error) error {
	if err == io.EOF {
		err = fmt.Errorf("body ended after %d of %d bytes: %w", b.n-b.left, b.n, io.ErrUnexpectedEOF)
	}
	old := b.ep
	b.release()
	if old != nil {
		b.s.pool.report(old, err, 0, 0)
	}
	if b.ctx.Err() != nil || b.resumes >= maxResumes || !resumable(err) {
		return b.readError(err)
	}
	b.resumes++
	var tried uint64
	if old != nil && len(b.s.pool.eps) > 1 {
		tried = 1 << b.s.pool.index(old)
	}
	if oerr := b.open(tried); oerr != nil {
		return fmt.Errorf("origin: read %s/%s: resume after %w: %w", b.bucket, b.key, b.readError(err), oerr)
	}
	return nil
}

func (b *s3Body) readError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("origin: read %s/%s: %w", b.bucket, b.key, err)
	}
	return s3Error("read", b.bucket, b.key, err)
}

// resumable reports whether a mid-body failure is worth a new request: a
// cut connection or a truncated body, not the caller's cancellation.
func resumable(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || retryable(err)
}

// release closes the current body and ends its in-flight count.
func (b *s3Body) release() {
	if b.body != nil {
		b.body.Close()
		b.body = nil
	}
	if b.ep != nil {
		b.ep.inflight.Add(-1)
		b.ep = nil
	}
}

// Close releases the connection; before the end of the body it drops it.
func (b *s3Body) Close() error {
	b.release()
	return nil
}

// errBody returns err on every Read, keeping the failed body for Close.
type errBody struct {
	body io.ReadCloser
	err  error
}

func (e errBody) Read([]byte) (int, error) { return 0, e.err }
func (e errBody) Close() error             { return e.body.Close() }

// Ping succeeds when one endpoint answers: a HEAD of PingBucket when set,
// else a bucket listing, each bounded by Timeout. Endpoints the pool holds
// healthy are asked first; readiness fails only when none answers.
func (s *S3) Ping(ctx context.Context) error {
	var errs []error
	var tried uint64
	for range s.pool.eps {
		e := s.pool.pick(tried)
		tried |= 1 << s.pool.index(e)
		err := s.pool.attempt(e, s.pool.slow, func(e *endpoint) error { return s.ping(ctx, e) })
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("origin: ping: %w: %w", errNoEndpoint, errors.Join(errs...))
}

func (s *S3) ping(ctx context.Context, e *endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.pingBucket == "" {
		if _, err := e.core.ListBuckets(ctx); err != nil {
			return pingError(err)
		}
		return nil
	}
	ok, err := e.core.BucketExists(ctx, s.pingBucket)
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
	u, err := s.pool.pick(0).core.PresignedGetObject(ctx, bucket, key, ttl, params)
	if err != nil {
		return "", fmt.Errorf("origin: presign %s/%s: %w", bucket, key, err)
	}
	return u.String(), nil
}
