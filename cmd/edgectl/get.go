package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/checksum"
)

// Exit codes of get and put beyond the common 0 (success) and 2 (invalid
// command line). Scripts branch on them: a network failure is worth
// retrying, a checksum mismatch or a runaway object is not.
const (
	exitFailed   = 1 // network failure, or the server refused (HTTP error)
	exitChecksum = 3 // the bytes do not match the expected SHA-256
	exitChanged  = 4 // the object changed during the transfer more than maxRestarts times
	exitLocal    = 5 // the local file or its state file cannot be used
)

// exitError carries a command's exit code with its error.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func exitf(code int, format string, a ...any) error {
	return exitError{code: code, err: fmt.Errorf(format, a...)}
}

const getAbout = `Downloads URL to FILE with N connections, each fetching pieces of a few MiB
(handed out one at a time, so a slow connection holds back at most one piece).

Resume: FILE.edgectl beside the output records the object's ETag, size and the
byte spans on disk; it is rewritten about once a second, only after those bytes
were fsync'd. Run the same command again after an interruption (even kill -9)
and only the missing bytes are fetched. Every range request carries If-Range
with the strong ETag: if the object was replaced, the server sends the whole
new version, and edgectl starts over instead of splicing two versions (at most
3 times, then exit 4). A server without a strong ETag gets one connection and
no resume.

Checksum: with -sha256, or when URL is /download/{id} and the admin key is set
($EDGECTL_ADMIN_KEY, -addr), the file's SHA-256 is checked against it (the
catalog's, read through the admin API); the download response itself carries
no checksum. Without either, the final line says the file was not verified.

Token: -token, else $EDGECTL_TOKEN, is sent as Authorization: Bearer; a token or
signature in URL's query is used as is. Neither is ever printed.

Prints {"file","size","etag","sha256","verified","received","resumed_from"} on
stdout; a progress bar on stderr when it is a terminal, else one final line.

exit status: 0 done, 1 network or HTTP error, 2 invalid command line, 3 checksum
mismatch, 4 object changed too often, 5 local file error.`

// Tunables, variables so that tests can shrink them.
var (
	// getPieceSize is the unit of work of one range request: small enough
	// that the tail of a download is not held by one slow connection,
	// large enough that request overhead stays far below 1%.
	getPieceSize int64 = 4 << 20
	// getStall aborts a request that delivers no bytes for this long; the
	// piece is retried from the byte it reached.
	getStall = 60 * time.Second
	// getCheckpoint is how often the state file is rewritten: what a kill
	// -9 can cost is about this long of transfer.
	getCheckpoint = time.Second
	// getRetries is how many times a piece is retried after a network
	// error or a 5xx without progress in between.
	getRetries = 5
	// getBackoff is the first pause before a retry; it doubles.
	getBackoff = 250 * time.Millisecond
)

// maxRestarts bounds starting over because the object changed.
const maxRestarts = 3

// getOptions is get's command line, parsed.
type getOptions struct {
	u        *url.URL
	out      string
	conns    int
	bearer   string
	sha256   string
	progress bool
}

func get(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("get", "URL [-o FILE] [-c N] [-sha256 HEX]", getAbout)
	var o getOptions
	var token string
	cmd.fs.StringVar(&o.out, "o", "", "output file (default: the last segment of URL's path)")
	cmd.fs.IntVar(&o.conns, "c", 4, "connections (1-64)")
	cmd.fs.StringVar(&token, "token", "", "download token, sent as a Bearer token (default $EDGECTL_TOKEN; the environment keeps it out of process listings)")
	cmd.fs.StringVar(&o.sha256, "sha256", "", "expected SHA-256 in hex (default: the catalog's, when the admin key is set)")
	pos, err := parseInterleaved(cmd, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cmd.usagef("takes one URL")
	}
	o.u, err = url.Parse(pos[0])
	if err != nil || (o.u.Scheme != "http" && o.u.Scheme != "https") || o.u.Host == "" {
		return cmd.usagef("URL must be http(s)://host/path") // the URL itself may hold a token: not repeated
	}
	o.u.User = nil
	if o.conns < 1 || o.conns > 64 {
		return cmd.usagef("-c must be between 1 and 64")
	}
	if o.sha256 != "" {
		if b, err := hex.DecodeString(o.sha256); err != nil || len(b) != sha256.Size {
			return cmd.usagef("-sha256 must be 64 hex digits")
		}
		o.sha256 = strings.ToLower(o.sha256)
	}
	if token == "" {
		token = getenv(x.environ, "EDGECTL_TOKEN")
	}
	o.bearer = token
	if o.out == "" {
		o.out = path.Base(o.u.Path)
		if o.out == "/" || o.out == "." || o.out == "" {
			return cmd.usagef("URL has no file name: give -o FILE")
		}
	}
	o.progress = isTerminal(x.stderr)
	return runGet(ctx, x, &o)
}

// parseInterleaved parses flags that may come before and after positional
// arguments ("get URL -o f" and "get -o f URL"), returning the positionals.
func parseInterleaved(cmd *command, args []string) ([]string, error) {
	var pos []string
	for {
		err := cmd.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, helpRequested{cmd.usage()}
		}
		if err != nil {
			return nil, usageError{err: fmt.Errorf("%s: %w", cmd.name, err), usage: cmd.usage()}
		}
		if cmd.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, cmd.fs.Arg(0))
		args = cmd.fs.Args()[1:]
	}
}

// getResult is what get prints on stdout.
type getResult struct {
	File     string `json:"file"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Verified bool   `json:"verified"`
	// Received counts the body bytes this run fetched; ResumedFrom the
	// bytes already on disk when it began.
	Received    int64 `json:"received"`
	ResumedFrom int64 `json:"resumed_from"`
}

func runGet(ctx context.Context, x *cli, o *getOptions) error {
	start := time.Now()
	want, verifyNote := expectedSHA256(ctx, x, o)
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   o.conns,
		DisableCompression:    true, // byte ranges of the stored representation, never of a gzip of it
		ResponseHeaderTimeout: getStall,
		ReadBufferSize:        64 << 10,
		TLSHandshakeTimeout:   15 * time.Second,
	}
	defer tr.CloseIdleConnections()
	g := &getter{
		hc:        &http.Client{Transport: tr},
		u:         o.u,
		bearer:    o.bearer,
		conns:     o.conns,
		out:       o.out,
		statePath: o.out + stateSuffix,
	}
	if o.progress {
		g.bar = newProgressBar(x.stderr, path.Base(o.out), g.onDisk)
	}
	err := g.run(ctx)
	if g.bar != nil {
		g.bar.finish(err == nil, g.onDisk())
	}
	if err != nil {
		return err
	}
	res := getResult{File: o.out, Size: g.st.Size, ETag: g.st.ETag, Received: g.received.Load(), ResumedFrom: g.resumedFrom}
	if want != "" {
		sum, err := checksum.FileSHA256(o.out)
		if err != nil {
			return exitf(exitLocal, "get: %v", err)
		}
		res.SHA256 = sum
		if sum != want {
			// The state goes too: resuming would only keep the bad bytes.
			removeState(g.statePath)
			return exitf(exitChecksum, "get: %s: SHA-256 %s, want %s (%s); the file is left for inspection", o.out, sum, want, verifyNote)
		}
		res.Verified = true
		verifyNote = "sha256 verified against " + verifyNote
	}
	if err := removeState(g.statePath); err != nil {
		return exitf(exitLocal, "get: %v", err)
	}
	el := time.Since(start)
	fmt.Fprintf(x.stderr, "edgectl: get %s: %s in %s (%s/s), %s resumed; %s\n", o.out, fmtBytes(res.Size),
		el.Round(time.Millisecond), fmtBytes(int64(float64(res.Received)/max(el.Seconds(), 1e-3))), fmtBytes(res.ResumedFrom), verifyNote)
	b, _ := json.Marshal(res)
	_, err = fmt.Fprintf(x.stdout, "%s\n", b)
	return err
}

// expectedSHA256 returns the checksum to verify against, and a note saying
// where it came from or why there is none.
func expectedSHA256(ctx context.Context, x *cli, o *getOptions) (string, string) {
	if o.sha256 != "" {
		return o.sha256, "-sha256"
	}
	id, ok := strings.CutPrefix(o.u.Path, "/download/")
	if !ok || id == "" {
		return "", "not verified: no -sha256, and URL is not a /download/{id} catalog file (the response carries no checksum)"
	}
	if x.api == nil || x.api.credential == "" {
		return "", "not verified: no -sha256, and no admin key to read the catalog's (the response carries no checksum)"
	}
	var rec struct {
		SHA256 string `json:"sha256"`
	}
	if err := x.api.do(ctx, http.MethodGet, "/v1/files/"+url.PathEscape(id), nil, &rec); err != nil {
		return "", fmt.Sprintf("not verified: reading the catalog: %v", err)
	}
	if rec.SHA256 == "" {
		return "", "not verified: the catalog has no sha256 for this file"
	}
	return strings.ToLower(rec.SHA256), "the catalog"
}

// redactURL shows u with every query value cut to its first 4 characters:
// enough to tell two tokens or signatures apart, never enough to use one.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if k, v, ok := strings.Cut(p, "="); ok && len(v) > 4 {
				parts[i] = k + "=" + v[:4] + "…"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
