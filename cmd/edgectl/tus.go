package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The tus 1.0 client edgectl put speaks (https://tus.io/protocols/resumable-upload):
// core (HEAD, PATCH), creation, checksum and concatenation. Only what the
// protocol defines is relied on, so any tus 1.0 server works; what a
// server lacks (concatenation) is asked with OPTIONS and done without.

const tusVersion = "1.0.0"

// errUploadGone means the server no longer knows an upload (404, 410:
// expired or terminated); it is created anew.
var errUploadGone = errors.New("the upload is gone from the server")

// errOffsetConflict is a 409: the server's offset is not the one the PATCH
// named (another client, or a PATCH whose answer was lost); ask again.
var errOffsetConflict = errors.New("offset conflict")

// tusClient makes the requests of one tus endpoint.
type tusClient struct {
	hc       *http.Client
	endpoint *url.URL
	bearer   string
}

// tusCaps is what OPTIONS told of the server.
type tusCaps struct {
	extensions map[string]bool
	maxSize    int64 // 0: not announced
	checksums  map[string]bool
}

func (c *tusClient) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if method != http.MethodOptions {
		req.Header.Set("Tus-Resumable", tusVersion)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	req.Header.Set("User-Agent", "edgectl")
	return req, nil
}

func (c *tusClient) do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	return resp, nil
}

// options asks the server for its extensions (tus 1.0 "OPTIONS").
func (c *tusClient) options(ctx context.Context) (tusCaps, error) {
	caps := tusCaps{extensions: map[string]bool{}, checksums: map[string]bool{}}
	req, err := c.newRequest(ctx, http.MethodOptions, c.endpoint.String(), nil)
	if err != nil {
		return caps, err
	}
	resp, err := c.do(req)
	if err != nil {
		return caps, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return caps, httpError(resp)
	}
	if v := resp.Header.Get("Tus-Version"); v != "" && !listHas(v, tusVersion) {
		return caps, fmt.Errorf("the server speaks tus %s, not %s", v, tusVersion)
	}
	for _, e := range splitList(resp.Header.Get("Tus-Extension")) {
		caps.extensions[e] = true
	}
	for _, a := range splitList(resp.Header.Get("Tus-Checksum-Algorithm")) {
		caps.checksums[strings.ToLower(a)] = true
	}
	if v := resp.Header.Get("Tus-Max-Size"); v != "" {
		caps.maxSize, _ = strconv.ParseInt(v, 10, 64)
	}
	return caps, nil
}

// create makes an upload of length bytes (tus "creation"); concat is ""
// or "partial"; it returns the upload's absolute URL.
func (c *tusClient) create(ctx context.Context, length int64, concat string, meta map[string]string) (string, error) {
	req, err := c.newRequest(ctx, http.MethodPost, c.endpoint.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Upload-Length", strconv.FormatInt(length, 10))
	if concat != "" {
		req.Header.Set("Upload-Concat", concat)
	}
	if m := encodeMetadata(meta); m != "" {
		req.Header.Set("Upload-Metadata", m)
	}
	return c.created(req)
}

// concatenate makes the final upload of parts (tus "concatenation").
func (c *tusClient) concatenate(ctx context.Context, parts []string, meta map[string]string) (string, error) {
	req, err := c.newRequest(ctx, http.MethodPost, c.endpoint.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Upload-Concat", "final;"+strings.Join(parts, " "))
	if m := encodeMetadata(meta); m != "" {
		req.Header.Set("Upload-Metadata", m)
	}
	return c.created(req)
}

func (c *tusClient) created(req *http.Request) (string, error) {
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", httpError(resp)
	}
	loc, err := c.endpoint.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", fmt.Errorf("201 without a usable Location")
	}
	return loc.String(), nil
}

// offset asks the server how many bytes of the upload it holds (tus HEAD).
func (c *tusClient) offset(ctx context.Context, u string) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, err
	}
	// HEAD answers must not be cached (tus 1.0 "HEAD").
	req.Header.Set("Cache-Control", "no-store")
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return 0, errUploadGone
	case resp.StatusCode/100 != 2:
		return 0, httpError(resp)
	}
	n, err := parseDigits(resp.Header.Get("Upload-Offset"))
	if err != nil {
		return 0, fmt.Errorf("HEAD: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return n, nil
}

// patch sends chunk at offset with its SHA-256 in Upload-Checksum (tus
// "checksum": the server drops a chunk that does not match) and returns
// the new offset. counted, when not nil, sees the body as it is sent.
func (c *tusClient) patch(ctx context.Context, u string, offset int64, chunk []byte, counted func(int)) (int64, error) {
	sum := sha256.Sum256(chunk)
	var body io.Reader = bytes.NewReader(chunk)
	if counted != nil {
		body = &countingReader{r: body, f: counted}
	}
	req, err := c.newRequest(ctx, http.MethodPatch, u, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = int64(len(chunk))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return 0, errUploadGone
	case http.StatusConflict:
		return 0, errOffsetConflict
	default:
		return 0, httpError(resp) // 460 Checksum Mismatch is retryable (>= 460: see retryablePut)
	}
	n, err := parseDigits(resp.Header.Get("Upload-Offset"))
	if err != nil || n != offset+int64(len(chunk)) {
		return 0, fmt.Errorf("PATCH: Upload-Offset %q after %d+%d bytes", resp.Header.Get("Upload-Offset"), offset, len(chunk))
	}
	return n, nil
}

// countingReader reports every Read to f: the progress of a body in flight.
type countingReader struct {
	r io.Reader
	f func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.f(n)
	}
	return n, err
}

// encodeMetadata renders Upload-Metadata: "key base64(value)" pairs,
// comma-separated, keys sorted so the header is stable.
func encodeMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + base64.StdEncoding.EncodeToString([]byte(m[k]))
	}
	return strings.Join(parts, ",")
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func listHas(v, want string) bool {
	for _, s := range splitList(v) {
		if s == want {
			return true
		}
	}
	return false
}
