package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UploadScope is what a signed upload URL allows: uploads into Bucket, at
// the object Key or under Prefix (exactly one is set), registered as FileID
// (empty: the upload id), each at most MaxSize bytes (0: the endpoint's
// maximum). The upload endpoint (package upload) enforces it; the Signer
// only proves that the signer chose it.
type UploadScope struct {
	Bucket  string
	Key     string
	Prefix  string
	FileID  string
	MaxSize int64
}

// Query parameters of a signed upload URL beside expires, kid and sig.
const (
	UploadParamBucket  = "bucket"
	UploadParamKey     = "key"
	UploadParamPrefix  = "prefix"
	UploadParamFileID  = "file_id"
	UploadParamMaxSize = "max_size"
)

// SignUpload returns the query ("bucket=..&expires=..&kid=..&max_size=..&
// sig=.."; key, prefix and file_id when set) that authorises POST to host
// path, the upload endpoint's creation URL, to create uploads within sc
// until expires, for clientIP when BindIP is set.
//
// The canonical string differs from a download URL's from its first line
// on, so that neither kind of signature is ever valid as the other:
//
//	edgeproxy-upload-v1
//	POST
//	host      as for downloads: lower case, no port, no brackets
//	path      exactly as given (the escaped creation path, no query)
//	bucket
//	key
//	prefix
//	file_id
//	max_size  decimal, 0 when unset
//	expires   unix seconds, decimal
//	ip        the client's address when BindIP, else empty
//
// The method is fixed: a signed upload URL creates uploads and nothing
// else; what follows a creation is authorised by the upload itself.
func (s *Signer) SignUpload(host, path string, sc UploadScope, expires time.Time, clientIP string) (string, error) {
	if expires.Unix() <= 0 {
		return "", fmt.Errorf("auth: sign upload: expires %v is not after 1970", expires)
	}
	switch {
	case sc.Bucket == "":
		return "", errors.New("auth: sign upload: bucket is required")
	case (sc.Key == "") == (sc.Prefix == ""):
		return "", errors.New("auth: sign upload: give exactly one of key and prefix")
	case sc.MaxSize < 0:
		return "", errors.New("auth: sign upload: max_size must not be negative")
	}
	ip, err := s.canonicalIP(clientIP)
	if err != nil {
		return "", fmt.Errorf("auth: sign upload: %w", err)
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	mac, err := s.uploadMAC(s.keys[s.active], host, path, sc, exp, ip)
	if err != nil {
		return "", fmt.Errorf("auth: sign upload: %w", err)
	}
	q := url.Values{}
	q.Set(UploadParamBucket, sc.Bucket)
	for k, v := range map[string]string{UploadParamKey: sc.Key, UploadParamPrefix: sc.Prefix, UploadParamFileID: sc.FileID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set(UploadParamMaxSize, strconv.FormatInt(sc.MaxSize, 10))
	q.Set("expires", exp)
	q.Set("kid", s.active)
	q.Set("sig", base64.RawURLEncoding.EncodeToString(mac))
	return q.Encode(), nil
}

// VerifyUpload checks a signed upload URL: sc as read (decoded) from its
// query, expires, kid and sig as raw query values. Its answers are
// Verify's: nil, signature_expired for a genuine URL more than Skew past
// its expiry, else signature_invalid.
func (s *Signer) VerifyUpload(host, path string, sc UploadScope, expires, kid, sig []byte, clientIP string, now time.Time) error {
	return s.verify(expires, kid, sig, clientIP, now, func(key []byte, exp, ip string) ([]byte, error) {
		return s.uploadMAC(key, host, path, sc, exp, ip)
	})
}

func (s *Signer) uploadMAC(key []byte, host, path string, sc UploadScope, expires, ip string) ([]byte, error) {
	host = canonicalHost(host)
	fields := [...]string{host, path, sc.Bucket, sc.Key, sc.Prefix, sc.FileID}
	for _, c := range fields {
		if strings.ContainsAny(c, "\n\r") {
			return nil, errors.New("newline in a signed field")
		}
	}
	if host == "" || path == "" || sc.MaxSize < 0 {
		return nil, errors.New("empty host or path, or negative max_size")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("edgeproxy-upload-v1\nPOST\n" + strings.Join(fields[:], "\n") + "\n" +
		strconv.FormatInt(sc.MaxSize, 10) + "\n" + expires + "\n" + ip))
	return m.Sum(nil), nil
}
