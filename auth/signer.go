package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SignerConfig configures a Signer. The zero value is not usable: Keys and
// ActiveKey are required.
type SignerConfig struct {
	// Keys maps key ids to secrets (at least 16 bytes each; 32 random bytes
	// recommended). Verify accepts a signature made with any of them, which
	// is how keys rotate: add the new key, switch ActiveKey, and remove the
	// old one once every URL it signed has expired. Ids may use letters,
	// digits, '-', '_' and '.', so they need no escaping in a query.
	Keys map[string]string `yaml:"keys"`
	// ActiveKey is the id of the key Sign uses.
	ActiveKey string `yaml:"active_key"`
	// Skew is how long after "expires" a URL is still accepted, to absorb
	// clock differences between the signing backend and the edge.
	// Default 30s; negative means none.
	Skew time.Duration `yaml:"skew"`
	// BindIP includes the client's IP address in the signature, so the URL
	// works only from the address it was signed for. Addresses are compared
	// exactly (IPv4-mapped IPv6 is unmapped first): clients whose address
	// changes mid-download, such as IPv6 privacy addresses, will be refused.
	BindIP bool `yaml:"bind_ip"`
}

// Signer makes and checks signed download URLs: an HMAC-SHA256 over a
// canonical description of the request, needing no Redis. It is safe for
// concurrent use.
//
// The canonical string is, each line ending in "\n" except the last:
//
//	edgeproxy-url-v1
//	METHOD      upper case; HEAD is signed and checked as GET
//	host        lower case, port and IPv6 brackets removed
//	path        exactly as given (the escaped path, no query)
//	expires     unix seconds, decimal
//	ip          the client's address when BindIP, else empty
//
// The port is left out because the edge often sits behind a load balancer
// that changes it (the URL says :443, the edge listens on :8443); the host
// name already pins the site. HEAD is folded into GET because it reveals a
// subset of what GET does. No component may contain a newline, so the
// encoding is unambiguous. The signature is base64url without padding.
type Signer struct {
	keys   map[string][]byte
	active string
	skew   time.Duration
	bindIP bool
}

// NewSigner validates cfg and returns a Signer.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("auth: signer config keys: at least one key is required")
	}
	s := &Signer{keys: make(map[string][]byte, len(cfg.Keys)), active: cfg.ActiveKey, skew: cfg.Skew, bindIP: cfg.BindIP}
	for kid, secret := range cfg.Keys {
		if !validKid(kid) {
			return nil, fmt.Errorf("auth: signer config keys: id %q: use letters, digits, '-', '_' and '.' (1-64)", kid)
		}
		if len(secret) < 16 {
			return nil, fmt.Errorf("auth: signer config keys[%s]: secret shorter than 16 bytes", kid)
		}
		s.keys[kid] = []byte(secret)
	}
	if _, ok := s.keys[cfg.ActiveKey]; !ok {
		return nil, fmt.Errorf("auth: signer config active_key=%q: not in keys", cfg.ActiveKey)
	}
	switch {
	case s.skew == 0:
		s.skew = 30 * time.Second
	case s.skew < 0:
		s.skew = 0
	}
	return s, nil
}

func validKid(kid string) bool {
	if len(kid) == 0 || len(kid) > 64 {
		return false
	}
	for _, c := range []byte(kid) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// Sign returns the query parameters ("expires=..&kid=..&sig=..") that make
// method host path valid until expires, for clientIP when BindIP is set.
func (s *Signer) Sign(method, host, path string, expires time.Time, clientIP string) (string, error) {
	if expires.Unix() <= 0 {
		return "", fmt.Errorf("auth: sign: expires %v is not after 1970", expires)
	}
	ip, err := s.canonicalIP(clientIP)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	mac, err := s.mac(s.keys[s.active], method, host, path, exp, ip)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return "expires=" + exp + "&kid=" + s.active + "&sig=" + base64.RawURLEncoding.EncodeToString(mac), nil
}

// Verify checks a signed URL's parameters, as raw query values, against the
// request. It returns nil, or an *Error: signature_expired when the
// signature is genuine but more than Skew past its expiry, else
// signature_invalid. The comparison is constant-time.
func (s *Signer) Verify(method, host, path string, expires, kid, sig []byte, clientIP string, now time.Time) error {
	return s.verify(expires, kid, sig, clientIP, now, func(key []byte, exp, ip string) ([]byte, error) {
		return s.mac(key, method, host, path, exp, ip)
	})
}

// verify is the check every signed URL shares: expiry syntax, key id,
// client address, a constant-time comparison with the MAC that mac
// computes over what the URL binds, then expiry. mac gets the key, the
// canonical expiry and the canonical client address.
func (s *Signer) verify(expires, kid, sig []byte, clientIP string, now time.Time, mac func(key []byte, exp, ip string) ([]byte, error)) error {
	exp, err := parseExpires(expires)
	if err != nil {
		return refuse(ErrSignatureInvalid, err)
	}
	key, ok := s.keys[string(kid)]
	if !ok {
		return refuse(ErrSignatureInvalid, errors.New("unknown key id"))
	}
	ip, err := s.canonicalIP(clientIP)
	if err != nil {
		return refuse(ErrSignatureInvalid, err)
	}
	got := make([]byte, base64.RawURLEncoding.DecodedLen(len(sig)))
	n, err := base64.RawURLEncoding.Strict().Decode(got, sig)
	if err != nil {
		return refuse(ErrSignatureInvalid, errors.New("signature is not base64url"))
	}
	want, err := mac(key, strconv.FormatInt(exp, 10), ip)
	if err != nil {
		return refuse(ErrSignatureInvalid, err)
	}
	if !hmac.Equal(got[:n], want) {
		return refuse(ErrSignatureInvalid, errors.New("signature mismatch"))
	}
	// Checked after the signature so that only genuine URLs are told they
	// expired.
	if now.After(time.Unix(exp, 0).Add(s.skew)) {
		return refuse(ErrSignatureExpired, nil)
	}
	return nil
}

// parseExpires accepts plain decimal unix seconds, 1 to 12 digits.
func parseExpires(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 12 {
		return 0, errors.New("bad expires")
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("bad expires")
		}
		n = n*10 + int64(c-'0')
	}
	if n == 0 {
		return 0, errors.New("bad expires")
	}
	return n, nil
}

func (s *Signer) canonicalIP(clientIP string) (string, error) {
	if !s.bindIP {
		return "", nil
	}
	a, err := netip.ParseAddr(clientIP)
	if err != nil {
		return "", fmt.Errorf("client ip %q: %w", clientIP, err)
	}
	return a.Unmap().WithZone("").String(), nil
}

// canonicalHost lower-cases host and strips the port and IPv6 brackets.
func canonicalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.ToLower(host)
}

func (s *Signer) mac(key []byte, method, host, path, expires, ip string) ([]byte, error) {
	method = strings.ToUpper(method)
	if method == "HEAD" {
		method = "GET"
	}
	host = canonicalHost(host)
	for _, c := range [...]string{method, host, path} {
		if strings.ContainsAny(c, "\n\r") {
			return nil, errors.New("newline in method, host or path")
		}
	}
	if method == "" || host == "" || path == "" {
		return nil, errors.New("empty method, host or path")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("edgeproxy-url-v1\n" + method + "\n" + host + "\n" + path + "\n" + expires + "\n" + ip))
	return m.Sum(nil), nil
}
