package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgeproxy/edgeproxy/internal/checksum"
)

const putAbout = `Uploads FILE over tus 1.0 to ENDPOINT (-url, else $EDGECTL_UPLOAD_URL), e.g.
https://edge.example/uploads/.

With -c N > 1 and a server offering tus concatenation, FILE is cut into N
partial uploads sent in parallel, then joined by a final upload. Every PATCH
carries Upload-Checksum (sha256) so a corrupted chunk is refused, not stored;
the file's SHA-256 goes in Upload-Metadata (sha256) with filename and filetype
for the server to verify the whole.

Resume: the upload URLs are kept in a state file (-state, default under the
user cache directory) written atomically as soon as each upload is created.
Run the same command again after an interruption (even kill -9): edgectl asks
each upload's offset with HEAD and sends only the rest. An upload the server
forgot (expired, 404/410) is created anew.

Token: -token, else $EDGECTL_UPLOAD_TOKEN, else $EDGECTL_TOKEN, or token= in
ENDPOINT's query, is sent as Authorization: Bearer and never printed.

Prints {"file","size","sha256","url","parts","sent"} on stdout.

exit status: 0 done, 1 network or HTTP error, 2 invalid command line,
5 local file error.`

var (
	// putChunk is the body of one PATCH: the unit a failure costs again
	// and the memory each connection holds. Below S3's 5 MiB minimum part,
	// because servers that verify a chunk's checksum before storing it
	// may take at most one part per PATCH; one that still answers 413
	// gets halves, down to putMinChunk.
	putChunk int64 = 4 << 20
	// putMinChunk is the smallest PATCH body a 413 shrinks chunks to.
	putMinChunk = 256 << 10
	// putLockWait bounds waiting on 423 Locked: after a kill -9 the
	// server may hold the upload's lock for the dead request until it
	// notices or the lock expires (edgeproxy: lock_ttl, 15 s).
	putLockWait = 60 * time.Second
	// putMinPart is the smallest partial upload worth a connection of its
	// own (S3 stores parts of at least 5 MiB anyway).
	putMinPart int64 = 16 << 20
)

// putState is the state file of one upload: enough to find the uploads on
// the server again and to tell whether FILE is still the same file.
type putState struct {
	Endpoint string    `json:"endpoint"` // without query
	File     string    `json:"file"`     // absolute path
	Size     int64     `json:"size"`
	ModTime  int64     `json:"mod_time"` // Unix nanoseconds
	SHA256   string    `json:"sha256"`
	Parts    []putPart `json:"parts"`
	Final    string    `json:"final,omitempty"`
}

// putPart is one upload: bytes [Off, Off+Len) of FILE.
type putPart struct {
	Off int64  `json:"off"`
	Len int64  `json:"len"`
	URL string `json:"url"`
}

type putOptions struct {
	file     string
	endpoint *url.URL
	bearer   string
	conns    int
	filename string
	filetype string
	state    string
	progress bool
	stderr   io.Writer
}

// putResult is what put prints on stdout.
type putResult struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url"`
	Parts  int    `json:"parts"`
	Sent   int64  `json:"sent"` // PATCH body bytes this run sent
}

func put(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("put", "FILE [-url ENDPOINT] [-c N] [-filename F] [-type T] [-state PATH]", putAbout)
	var o putOptions
	var endpoint, token string
	cmd.fs.StringVar(&endpoint, "url", "", "tus endpoint (default $EDGECTL_UPLOAD_URL)")
	cmd.fs.IntVar(&o.conns, "c", 4, "parallel partial uploads (1-16; 1 without server concatenation)")
	cmd.fs.StringVar(&token, "token", "", "upload token (default $EDGECTL_UPLOAD_TOKEN, else $EDGECTL_TOKEN)")
	cmd.fs.StringVar(&o.filename, "filename", "", "name in Upload-Metadata (default: FILE's base name)")
	cmd.fs.StringVar(&o.filetype, "type", "", "media type in Upload-Metadata (default: from FILE's extension)")
	cmd.fs.StringVar(&o.state, "state", "", "state file (default: under the user cache directory, one per file and endpoint)")
	pos, err := parseInterleaved(cmd, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return cmd.usagef("takes one FILE")
	}
	if o.file, err = filepath.Abs(pos[0]); err != nil {
		return cmd.usagef("%v", err)
	}
	if endpoint == "" {
		endpoint = getenv(x.environ, "EDGECTL_UPLOAD_URL")
	}
	o.endpoint, err = url.Parse(endpoint)
	if endpoint == "" || err != nil || (o.endpoint.Scheme != "http" && o.endpoint.Scheme != "https") || o.endpoint.Host == "" {
		return cmd.usagef("-url (or $EDGECTL_UPLOAD_URL) must be http(s)://host/path")
	}
	o.endpoint.User = nil
	if o.conns < 1 || o.conns > 16 {
		return cmd.usagef("-c must be between 1 and 16")
	}
	for _, v := range []string{token, getenv(x.environ, "EDGECTL_UPLOAD_TOKEN"), getenv(x.environ, "EDGECTL_TOKEN")} {
		if o.bearer == "" {
			o.bearer = v
		}
	}
	// A token in the endpoint's query moves to the header: upload URLs
	// the server hands out would not carry it.
	if q := o.endpoint.Query(); q.Get("token") != "" {
		if o.bearer == "" {
			o.bearer = q.Get("token")
		}
		q.Del("token")
		o.endpoint.RawQuery = q.Encode()
	}
	if o.filename == "" {
		o.filename = filepath.Base(o.file)
	}
	if o.filetype == "" {
		o.filetype = contentTypeOf(o.file)
	}
	if o.state == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return exitf(exitLocal, "put: no cache directory for the state file (give -state): %v", err)
		}
		id := sha256.Sum256([]byte(urlIdentity(o.endpoint) + "\x00" + o.file))
		o.state = filepath.Join(dir, "edgectl", "put-"+hex.EncodeToString(id[:8])+".json")
	}
	o.progress, o.stderr = isTerminal(x.stderr), x.stderr
	return runPut(ctx, x, &o)
}

// uploader is one edgectl put.
type uploader struct {
	tus *tusClient
	f   *os.File
	o   *putOptions
	mu  sync.Mutex
	st  putState // guarded by mu while parts run
	// saveMu serialises state writes: parts are created concurrently and
	// share one temporary file.
	saveMu sync.Mutex
	held   []atomic.Int64
	sent   atomic.Int64
	bar    *progressBar
	start  time.Time
}

func runPut(ctx context.Context, x *cli, o *putOptions) error {
	f, err := openRegular(o.file)
	if err != nil {
		return exitf(exitLocal, "put: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return exitf(exitLocal, "put: %v", err)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   o.conns,
		ResponseHeaderTimeout: 5 * time.Minute, // the server may be storing a part before it answers
		WriteBufferSize:       64 << 10,
	}
	defer tr.CloseIdleConnections()
	u := &uploader{tus: &tusClient{hc: &http.Client{Transport: tr}, endpoint: o.endpoint, bearer: o.bearer}, f: f, o: o, start: time.Now()}

	st, err := loadPutState(o.state)
	if err != nil {
		return exitf(exitLocal, "put: %v (remove it to start over)", err)
	}
	if st == nil || st.Endpoint != urlIdentity(o.endpoint) || st.File != o.file || st.Size != fi.Size() || st.ModTime != fi.ModTime().UnixNano() {
		// A new upload, or FILE changed since: the old uploads are not
		// resumed (they expire on the server).
		sum, err := checksum.FileSHA256(o.file)
		if err != nil {
			return exitf(exitLocal, "put: %v", err)
		}
		st = &putState{Endpoint: urlIdentity(o.endpoint), File: o.file, Size: fi.Size(), ModTime: fi.ModTime().UnixNano(), SHA256: sum}
	}
	u.st = *st
	if u.st.Final == "" {
		if err := u.upload(ctx); err != nil {
			return u.fail(ctx, err)
		}
	}
	if err := removeState(o.state); err != nil {
		return exitf(exitLocal, "put: %v", err)
	}
	if u.bar != nil {
		u.bar.finish(true, u.st.Size)
	}
	res := putResult{File: o.file, Size: u.st.Size, SHA256: u.st.SHA256, URL: u.st.Final, Parts: len(u.st.Parts), Sent: u.sent.Load()}
	el := time.Since(u.start)
	fmt.Fprintf(x.stderr, "edgectl: put %s: %s in %s (%s/s sent), %d part(s), sha256 %s\n", filepath.Base(o.file), fmtBytes(res.Size),
		el.Round(time.Millisecond), fmtBytes(int64(float64(res.Sent)/max(el.Seconds(), 1e-3))), res.Parts, res.SHA256)
	b, _ := json.Marshal(res)
	_, err = fmt.Fprintf(x.stdout, "%s\n", b)
	return err
}

func (u *uploader) fail(ctx context.Context, err error) error {
	if u.bar != nil {
		u.bar.finish(false, 0)
	}
	if _, ok := errors.AsType[exitError](err); ok {
		return err
	}
	if ctx.Err() != nil {
		return exitf(exitFailed, "put: interrupted; run the same command to resume")
	}
	return exitf(exitFailed, "put %s: %v (run the same command to resume)", redactURL(u.o.endpoint), err)
}

func (u *uploader) meta() map[string]string {
	return map[string]string{"filename": u.o.filename, "filetype": u.o.filetype, "sha256": u.st.SHA256}
}

// upload creates the uploads not yet created, sends what the server lacks
// of each, and joins them.
func (u *uploader) upload(ctx context.Context) error {
	if len(u.st.Parts) == 0 {
		caps, err := u.tus.options(ctx)
		if err != nil {
			return fmt.Errorf("OPTIONS: %w", err)
		}
		if caps.maxSize > 0 && u.st.Size > caps.maxSize {
			return exitf(exitFailed, "put: %s is %d bytes; the server takes at most %d (Tus-Max-Size)", u.o.file, u.st.Size, caps.maxSize)
		}
		n := 1
		if caps.extensions["concatenation"] {
			n = int(max(1, min(int64(u.o.conns), u.st.Size/putMinPart)))
		}
		u.st.Parts = planParts(u.st.Size, n)
	}
	if u.o.progress {
		u.bar = newProgressBar(u.o.stderr, filepath.Base(u.o.file), u.position)
		u.bar.setTotal(u.st.Size)
	}
	u.held = make([]atomic.Int64, len(u.st.Parts))
	eg, ectx := errgroup.WithContext(ctx)
	for i := range u.st.Parts {
		eg.Go(func() error { return u.sendPart(ectx, i) })
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if len(u.st.Parts) == 1 {
		u.st.Final = u.st.Parts[0].URL
		return nil
	}
	urls := make([]string, len(u.st.Parts))
	for i, p := range u.st.Parts {
		urls[i] = p.URL
	}
	final, err := u.tus.concatenate(ctx, urls, u.meta())
	if err != nil {
		return fmt.Errorf("final upload: %w", err)
	}
	u.st.Final = final
	return u.save()
}

// planParts cuts size bytes into n uploads, the last one taking the rest.
func planParts(size int64, n int) []putPart {
	per := size / int64(n)
	parts := make([]putPart, n)
	for i := range parts {
		parts[i] = putPart{Off: int64(i) * per, Len: per}
	}
	parts[n-1].Len = size - parts[n-1].Off
	return parts
}

// position is the bytes the server holds plus those in flight, for the bar.
func (u *uploader) position() int64 {
	var n int64
	for i := range u.held {
		n += u.held[i].Load()
	}
	return n
}

func (u *uploader) save() error {
	u.saveMu.Lock()
	defer u.saveMu.Unlock()
	u.mu.Lock()
	st := u.st
	st.Parts = append([]putPart(nil), u.st.Parts...)
	u.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(u.o.state), 0o700); err != nil {
		return exitf(exitLocal, "put: %v", err)
	}
	if err := savePutState(u.o.state, &st); err != nil {
		return exitf(exitLocal, "put: %v", err)
	}
	return nil
}

// sendPart brings part i to completion on the server: create it if it has
// no URL (or the server lost it), ask its offset, PATCH the rest in chunks.
// Failures without progress are retried getRetries times.
func (u *uploader) sendPart(ctx context.Context, i int) error {
	u.mu.Lock()
	p := u.st.Parts[i]
	u.mu.Unlock()
	concat := ""
	if len(u.st.Parts) > 1 {
		concat = "partial"
	}
	chunk := make([]byte, min(putChunk, max(p.Len, 1)))
	backoff := getBackoff
	var locked time.Duration
	for tries := 0; ; tries++ {
		progressed, err := u.sendPartOnce(ctx, i, &p, concat, chunk)
		if err == nil {
			return nil
		}
		if se, ok := errors.AsType[*statusError](err); ok && se.status == http.StatusRequestEntityTooLarge && len(chunk)/2 >= putMinChunk {
			chunk = chunk[:len(chunk)/2] // the server takes smaller PATCH bodies
			tries--
			continue
		}
		if se, ok := errors.AsType[*statusError](err); ok && se.status == http.StatusLocked && locked < putLockWait {
			wait := max(se.retryAfter, time.Second)
			locked += wait
			tries--
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil || !retryablePut(err) {
			return err
		}
		if progressed {
			tries, backoff = 0, getBackoff
		}
		if tries >= getRetries {
			return err
		}
		if !pause(ctx, &backoff) {
			return ctx.Err()
		}
	}
}

func (u *uploader) sendPartOnce(ctx context.Context, i int, p *putPart, concat string, chunk []byte) (bool, error) {
	if p.URL == "" {
		meta := u.meta()
		if concat != "" {
			// The whole file's SHA-256 belongs to the final upload; the
			// name stays, as servers may derive the object key (and check
			// the token's scope) from it at every creation.
			delete(meta, "sha256")
		}
		loc, err := u.tus.create(ctx, p.Len, concat, meta)
		if err != nil {
			return false, fmt.Errorf("create: %w", err)
		}
		p.URL = loc
		u.mu.Lock()
		u.st.Parts[i].URL = loc
		u.mu.Unlock()
		// Recorded before any byte is sent, so a kill -9 resumes this upload.
		if err := u.save(); err != nil {
			return false, err
		}
	}
	off, err := u.tus.offset(ctx, p.URL)
	if errors.Is(err, errUploadGone) {
		p.URL = ""
		u.mu.Lock()
		u.st.Parts[i].URL = ""
		u.mu.Unlock()
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("HEAD: %w", err)
	}
	if off > p.Len {
		return false, exitf(exitFailed, "put: the server holds %d bytes of a %d-byte upload", off, p.Len)
	}
	u.held[i].Store(off)
	progressed := false
	for off < p.Len {
		n := min(int64(len(chunk)), p.Len-off)
		if _, err := u.f.ReadAt(chunk[:n], p.Off+off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			return progressed, exitf(exitLocal, "put: read %s: %v", u.o.file, err)
		}
		base := off
		var inFlight atomic.Int64 // the transport's writer goroutine counts
		next, err := u.tus.patch(ctx, p.URL, off, chunk[:n], func(k int) {
			u.held[i].Store(base + inFlight.Add(int64(k)))
		})
		u.sent.Add(inFlight.Load())
		if err != nil {
			u.held[i].Store(off)
			if errors.Is(err, errUploadGone) {
				p.URL = ""
				u.mu.Lock()
				u.st.Parts[i].URL = ""
				u.mu.Unlock()
			}
			return progressed, fmt.Errorf("PATCH at %d: %w", off, err)
		}
		off, progressed = next, true
		u.held[i].Store(off)
	}
	return progressed, nil
}

// retryablePut tells transient failures from final ones: network errors,
// 5xx, 408, 429, a lost upload (created anew), an offset conflict or a
// checksum mismatch (460: the chunk was damaged on the way) are retried.
func retryablePut(err error) bool {
	if errors.Is(err, errUploadGone) || errors.Is(err, errOffsetConflict) {
		return true
	}
	if se, ok := errors.AsType[*statusError](err); ok && se.status == 460 {
		return true
	}
	return retryable(err)
}

func loadPutState(path string) (*putState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st putState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	var at int64
	for _, p := range st.Parts {
		if p.Off != at || p.Len < 0 {
			return nil, fmt.Errorf("state %s: parts do not tile the file", path)
		}
		at += p.Len
	}
	if len(st.Parts) > 0 && at != st.Size {
		return nil, fmt.Errorf("state %s: parts do not tile the file", path)
	}
	return &st, nil
}

// savePutState writes st atomically (see writeFileAtomic).
func savePutState(path string, st *putState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeFileAtomic(path, b)
}
