package main

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
)

func sign(x *cli, args []string, now time.Time) error {
	cmd := newCommand("sign", "-url URL -ttl D [-ip IP] [-method M]\n       edgectl sign -upload -url https://edge/uploads/ -bucket B (-key K | -prefix P) [-file-id ID] [-max-size N] -ttl D [-ip IP]",
		`Prints URL with expires, kid and sig added: a signed download URL the edge accepts
until now+D (routes with auth "signed"). Works offline; nothing is sent anywhere.

With -upload, URL is the tus creation URL (upload.prefix) and the printed URL lets a
tus client create uploads into bucket B, at key K or under prefix P (the object is then
P<file name>), each at most N bytes (0: the edge's upload.max_size), registered in the
catalog as ID, until now+D. Bucket, key or prefix, file id and size are part of the
signature. An upload created with it resumes until the upload itself expires.

Keys come from the environment, in the proxy's auth.signer.keys format:
  $EDGECTL_SIGN_KEYS  kid1:secret1,kid2:secret2 (secrets may not contain ',')
  $EDGECTL_SIGN_KID   the id of the key to sign with (may be left out when there is one key)
Give -ip exactly when the proxy has auth.signer.bind_ip: true; the URL then works only
from that address.`)
	var rawURL, ip, method string
	var ttl time.Duration
	var up bool
	var sc auth.UploadScope
	cmd.fs.BoolVar(&up, "upload", false, "sign a tus upload creation URL instead of a download")
	cmd.fs.StringVar(&sc.Bucket, "bucket", "", "with -upload: the bucket uploads go to (required)")
	cmd.fs.StringVar(&sc.Key, "key", "", "with -upload: the object key of the upload")
	cmd.fs.StringVar(&sc.Prefix, "prefix", "", "with -upload: the key prefix the uploads go under")
	cmd.fs.StringVar(&sc.FileID, "file-id", "", "with -upload: catalog id of the completed file (default: the upload id)")
	cmd.fs.Int64Var(&sc.MaxSize, "max-size", 0, "with -upload: largest upload in bytes (0: the edge's maximum)")
	cmd.fs.StringVar(&rawURL, "url", "", "download URL to sign, http(s)://host/path[?query] (required)")
	cmd.fs.DurationVar(&ttl, "ttl", 0, "how long the URL stays valid (required)")
	cmd.fs.StringVar(&ip, "ip", "", "client address the URL is bound to")
	cmd.fs.StringVar(&method, "method", "GET", "request method (HEAD is signed as GET)")
	if err := cmd.parse(args); err != nil {
		return err
	}
	switch {
	case rawURL == "":
		return cmd.usagef("-url is required")
	case ttl <= 0:
		return cmd.usagef("-ttl must be a positive duration such as 1h")
	case !validMethod(method):
		return cmd.usagef("-method %q: want a method such as GET", method)
	}
	if err := checkUploadScope(cmd, up, sc, method); err != nil {
		return err
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return cmd.usagef("-ip %q: not an IP address", ip)
		}
	}
	keys, kid, err := signKeys(x.environ)
	if err != nil {
		return cmd.usagef("%v", err)
	}
	s, err := auth.NewSigner(auth.SignerConfig{Keys: keys, ActiveKey: kid, BindIP: ip != ""})
	if err != nil {
		return cmd.usagef("$EDGECTL_SIGN_KEYS: %v", err)
	}
	var out string
	if up {
		out, err = signUploadURL(s, rawURL, sc, now.Add(ttl), ip)
	} else {
		out, err = signURL(s, rawURL, method, now.Add(ttl), ip)
	}
	if err != nil {
		return cmd.usagef("%v", err)
	}
	_, err = fmt.Fprintln(x.stdout, out)
	return err
}

// signURL adds the signature parameters to rawURL's query. The signed path
// is the URL's escaped path, exactly as the returned URL spells it, which is
// what a client sends and what the proxy checks (the request line's path).
func signURL(s *auth.Signer, rawURL, method string, expires time.Time, ip string) (string, error) {
	u, err := parseSignable(rawURL, "http(s)://host/path")
	if err != nil {
		return "", err
	}
	q, _ := url.ParseQuery(u.RawQuery) // a malformed query is passed on as it is
	for _, p := range []string{"expires", "kid", "sig"} {
		if q.Has(p) {
			return "", fmt.Errorf("-url already has a %q parameter", p)
		}
	}
	params, err := s.Sign(method, u.Host, u.EscapedPath(), expires, ip)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += params
	return u.String(), nil
}

// parseSignable parses rawURL, an absolute http(s) URL to sign (want names
// the expected form in the error), with its path defaulted to "/" and its
// fragment dropped.
func parseSignable(rawURL, want string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.User != nil {
		return nil, fmt.Errorf("-url %q: want %s", rawURL, want)
	}
	if !plainHost(u.Host) {
		// The Host header is ASCII; anything else would be escaped in the
		// printed URL and no longer match the signed host.
		return nil, fmt.Errorf("-url host %q: use the ASCII (punycode) form", u.Host)
	}
	if u.Path == "" {
		u.Path, u.RawPath = "/", ""
	}
	u.Fragment, u.RawFragment = "", "" // never sent to the server
	return u, nil
}

// checkUploadScope checks the -upload flags: with -upload a bucket and
// exactly one of key and prefix, no method; without it none of them.
func checkUploadScope(cmd *command, up bool, sc auth.UploadScope, method string) error {
	if !up {
		if sc != (auth.UploadScope{}) {
			return cmd.usagef("-bucket, -key, -prefix, -file-id and -max-size need -upload")
		}
		return nil
	}
	switch {
	case method != "GET":
		return cmd.usagef("-upload signs POST to the creation URL; leave out -method")
	case sc.Bucket == "":
		return cmd.usagef("-upload needs -bucket")
	case (sc.Key == "") == (sc.Prefix == ""):
		return cmd.usagef("-upload needs exactly one of -key and -prefix")
	case sc.MaxSize < 0:
		return cmd.usagef("-max-size must not be negative")
	}
	return nil
}

// signUploadURL adds the signed upload parameters to rawURL, the creation
// URL, whose escaped path is what the edge checks.
func signUploadURL(s *auth.Signer, rawURL string, sc auth.UploadScope, expires time.Time, ip string) (string, error) {
	u, err := parseSignable(rawURL, "http(s)://host/uploads/")
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" {
		return "", fmt.Errorf("-url %q: a creation URL has no query", rawURL)
	}
	params, err := s.SignUpload(u.Host, u.EscapedPath(), sc, expires, ip)
	if err != nil {
		return "", err
	}
	u.RawQuery = params
	return u.String(), nil
}

// signKeys reads the signing keys and the active key id from the environment.
func signKeys(environ []string) (map[string]string, string, error) {
	raw := getenv(environ, "EDGECTL_SIGN_KEYS")
	if raw == "" {
		return nil, "", errors.New("$EDGECTL_SIGN_KEYS is not set (kid1:secret1,kid2:secret2)")
	}
	keys, err := parseSignKeys(raw)
	if err != nil {
		return nil, "", fmt.Errorf("$EDGECTL_SIGN_KEYS: %w", err)
	}
	kid := getenv(environ, "EDGECTL_SIGN_KID")
	if kid == "" {
		if len(keys) != 1 {
			return nil, "", fmt.Errorf("$EDGECTL_SIGN_KID is not set: name one of %s", strings.Join(sortedKeys(keys), ", "))
		}
		for k := range keys {
			kid = k
		}
	}
	if _, ok := keys[kid]; !ok {
		return nil, "", fmt.Errorf("$EDGECTL_SIGN_KID=%q is not among the keys (%s)", kid, strings.Join(sortedKeys(keys), ", "))
	}
	return keys, kid, nil
}

// parseSignKeys parses "kid1:secret1,kid2:secret2". Spaces around items,
// ids and secrets are ignored, as are empty items; a secret may contain ':'
// but not ','. Errors never quote a secret.
func parseSignKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	for i, item := range strings.Split(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		kid, secret, ok := strings.Cut(item, ":")
		kid, secret = strings.TrimSpace(kid), strings.TrimSpace(secret)
		if !ok || kid == "" || secret == "" {
			return nil, fmt.Errorf("item %d: want kid:secret", i+1)
		}
		if _, dup := keys[kid]; dup {
			return nil, fmt.Errorf("item %d: key id %q given twice", i+1, kid)
		}
		keys[kid] = secret
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// validMethod accepts an HTTP method token of letters (GET, HEAD, get).
func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range []byte(m) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// plainHost reports whether host is spelled with the characters of a DNS
// name, an IP literal and a port only.
func plainHost(host string) bool {
	for _, c := range []byte(host) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._:[]", c) >= 0) {
			return false
		}
	}
	return host != ""
}
