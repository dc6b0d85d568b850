package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// TLSConfig turns HTTPS on for the download listener. TLS is on when
// CertFile is set; the certificate is re-read on Server.ReloadTLS (SIGHUP)
// and whenever either file changes (a stat every ReloadInterval), without
// closing any connection: handshakes after the swap get the new pair,
// connections already open keep theirs. A pair that does not load keeps
// the old one serving and logs one line.
type TLSConfig struct {
	// CertFile is the PEM certificate chain, leaf first. Default: none,
	// plain HTTP.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile's leaf. Required with
	// CertFile.
	KeyFile string `yaml:"key_file"`
	// ReloadInterval is how often the two files are stat'ed for a change.
	// Default 10s: certificate renewers (certbot, cert-manager) write the
	// files minutes before the old certificate expires, so seconds of delay
	// do not matter, and a stat costs nothing. Negative: only on SIGHUP.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// RedirectListen, when set, is a plain-HTTP listener that answers every
	// request for a host of the routing table with 308 to the same host and
	// path over https (RFC 9110 15.4.9: the method is kept). Other hosts
	// get 404 unknown_host: following an arbitrary Host would make the edge
	// an open redirector. Default: none.
	RedirectListen string `yaml:"redirect_listen"`
}

// Enabled reports whether the download listener speaks TLS.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// withDefaults returns c with zero fields set to their defaults; Config's
// validate checks it.
func (c TLSConfig) withDefaults() TLSConfig {
	if c.ReloadInterval == 0 {
		c.ReloadInterval = 10 * time.Second
	}
	return c
}

func (c *TLSConfig) validate() error {
	switch {
	case c.CertFile == "" && c.KeyFile != "":
		return errors.New("proxy: tls.cert_file: required with tls.key_file")
	case c.CertFile != "" && c.KeyFile == "":
		return errors.New("proxy: tls.key_file: required with tls.cert_file")
	case c.RedirectListen != "" && c.CertFile == "":
		return errors.New("proxy: tls.redirect_listen: needs tls.cert_file")
	}
	return nil
}

// certStore holds the serving certificate behind an atomic pointer, so
// that a handshake reads it without a lock while a reload replaces it.
type certStore struct {
	cert atomic.Pointer[tls.Certificate]
	log  *slog.Logger

	mu        sync.Mutex // serialises loads; guards the fields below
	certFile  string
	keyFile   string
	certStamp fileStamp
	keyStamp  fileStamp
}

// fileStamp is what the watch compares to see a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// newCertStore loads the pair once; at start an unusable pair is an error.
func newCertStore(certFile, keyFile string, log *slog.Logger) (*certStore, error) {
	cs := &certStore{log: log}
	if err := cs.load(certFile, keyFile); err != nil {
		return nil, err
	}
	return cs, nil
}

// load reads and checks the pair and, when it is usable, makes it the one
// new handshakes get. On error the old pair stays.
func (cs *certStore) load(certFile, keyFile string) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.loadLocked(certFile, keyFile)
}

func (cs *certStore) loadLocked(certFile, keyFile string) error {
	cst, kst := stampOf(certFile), stampOf(keyFile)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("proxy: tls.cert_file, tls.key_file: load %s and %s: %w", certFile, keyFile, err)
	}
	// LoadX509KeyPair already parsed the leaf (Go 1.23 and later).
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("proxy: tls.cert_file: parse %s: %w", certFile, err)
		}
	}
	cs.cert.Store(&pair)
	cs.certFile, cs.keyFile = certFile, keyFile
	cs.certStamp, cs.keyStamp = cst, kst
	return nil
}

// reload re-reads the pair (from new paths when they are not empty) and
// logs the outcome in one line. It returns the load error, if any.
func (cs *certStore) reload(certFile, keyFile, why string) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if certFile == "" {
		certFile, keyFile = cs.certFile, cs.keyFile
	}
	if err := cs.loadLocked(certFile, keyFile); err != nil {
		cs.log.Error("tls: new certificate refused; the old one keeps serving", "trigger", why, "err", err)
		return err
	}
	leaf := cs.cert.Load().Leaf
	cs.log.Info("tls: certificate loaded", "trigger", why, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	return nil
}

// changed reports whether either file differs from the pair last loaded
// (or last refused: a refused pair is not retried until it changes again).
func (cs *certStore) changed() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cst, kst := stampOf(cs.certFile), stampOf(cs.keyFile)
	if cst == cs.certStamp && kst == cs.keyStamp {
		return false
	}
	cs.certStamp, cs.keyStamp = cst, kst
	return true
}

// watch reloads the pair when its files change, until ctx ends. Renewers
// write the two files one after the other: a check that sees only one of
// them new fails to load, keeps the old pair, and the next tick loads the
// completed pair.
func (cs *certStore) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if cs.changed() {
				cs.reload("", "", "file change")
			}
		}
	}
}

func (cs *certStore) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return cs.cert.Load(), nil
}

// tlsConfig is the listener's TLS configuration: TLS 1.2 or later, Go's
// default cipher suites (AEAD with forward secrecy only for TLS 1.2; TLS
// 1.3's are not configurable), and ALPN http/1.1, the one protocol
// fasthttp speaks.
func (cs *certStore) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.getCertificate,
		NextProtos:     []string{"http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// ReloadTLS re-reads the certificate and key, from new paths when tc names
// them (an empty tc.CertFile keeps the current paths). On failure the old
// pair keeps serving; the error has been logged. Without TLS it does
// nothing: turning TLS on or off needs a restart.
func (s *Server) ReloadTLS(tc TLSConfig) error {
	if s.certs == nil {
		return nil
	}
	return s.certs.reload(tc.CertFile, tc.KeyFile, "reload")
}

// TLSEnabled reports whether the download listener speaks TLS.
func (s *Server) TLSEnabled() bool { return s.certs != nil }

// wrapTLS makes ln a TLS listener when TLS is configured, and starts the
// file watch for the lifetime of ctx. The handshake runs on the
// connection's first read, in the connection's own goroutine, bounded by
// fasthttp's ReadTimeout like any slow request.
func (s *Server) wrapTLS(ctx context.Context, ln net.Listener) net.Listener {
	if s.certs == nil {
		return ln
	}
	if s.cfg.TLS.ReloadInterval > 0 {
		go s.certs.watch(ctx, s.cfg.TLS.ReloadInterval)
	}
	return tls.NewListener(ln, s.certs.tlsConfig())
}

// httpsPort is the port redirects name: empty for 443 (the https
// default), else the download listener's port.
func (s *Server) httpsPort() string {
	_, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil || port == "443" || port == "" {
		return ""
	}
	if _, err := strconv.Atoi(port); err != nil {
		return ""
	}
	return port
}

// RedirectHandler answers the plain-HTTP redirect listener: 308 to https
// for hosts the routing table knows, 404 unknown_host for the others.
func (s *Server) RedirectHandler(ctx *fasthttp.RequestCtx) {
	host := ctx.Host()
	rt := s.rt.Load()
	if _, ok := rt.hosts.Lookup(host); !ok || bytes.ContainsAny(host, "@/\\") {
		writeError(ctx, errUnknownHost)
		return
	}
	name := host
	if h, _, err := net.SplitHostPort(string(host)); err == nil {
		name = []byte(h)
		if bytes.IndexByte(name, ':') >= 0 {
			name = []byte("[" + h + "]")
		}
	}
	loc := make([]byte, 0, 64+len(ctx.RequestURI()))
	loc = append(loc, "https://"...)
	loc = append(loc, name...)
	if p := s.httpsPort(); p != "" {
		loc = append(loc, ':')
		loc = append(loc, p...)
	}
	// RequestURI is the path and query as sent (origin form); an
	// absolute-form target is reduced to its path and query.
	uri := ctx.URI()
	loc = append(loc, uri.PathOriginal()...)
	if q := uri.QueryString(); len(q) > 0 {
		loc = append(loc, '?')
		loc = append(loc, q...)
	}
	ctx.Response.Header.SetBytesV(fasthttp.HeaderLocation, loc)
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.SetConnectionClose()
}

// ServeRedirect runs the HTTP-to-HTTPS redirect listener on ln until ctx
// ends. Its connections carry no downloads, so it stops without draining.
func (s *Server) ServeRedirect(ctx context.Context, ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:               s.RedirectHandler,
		Name:                  "edgeproxy",
		ReadTimeout:           s.cfg.ReadTimeout,
		IdleTimeout:           s.cfg.IdleTimeout,
		WriteTimeout:          s.cfg.SendTimeout,
		ReadBufferSize:        s.cfg.MaxHeaderBytes,
		MaxRequestBodySize:    4 << 10,
		NoDefaultContentType:  true,
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{s.log},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	err := srv.Shutdown()
	ln.Close()
	<-errc
	return err
}
