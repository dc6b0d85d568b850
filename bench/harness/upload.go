package main

// The upload memory section (-upload): what edgeproxy's memory does while
// many large tus uploads stream through it at once (issue 13: 20
// concurrent 1 GiB uploads keep RSS within the memory budget + 100 MiB).
//
// One edgeproxy with a 64 MiB memory tier, uploads on, Redis for upload
// state, writing straight to MinIO (no relay). -upload-count clients each
// create an upload and send its whole body in one streamed PATCH, from
// generated data (objectReader: nothing is read from disk), hashing what
// they send. The proxy's RSS is sampled every 250 ms; the kernel's
// high-water mark (VmHWM) gives the true peak. Afterwards every object is
// read back from MinIO and its SHA-256 compared with the client's, and no
// multipart upload may be left.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/checksum"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// uploadOptions are the flags of the -upload section.
type uploadOptions struct {
	uploads int   // concurrent uploads
	size    int64 // bytes each
}

// uploadAdminKey authorises the harness's calls to the admin API of the
// edgeproxy it starts (loopback only, gone with the run).
const uploadAdminKey = "harness-upload-admin-key"

// uploadBound is the bound on the proxy's RSS: its memory budget
// (the memory tier, diskMemory) + 100 MiB.
const uploadBound = 64<<20 + 100<<20

// uploadResult is one client's upload.
type uploadResult struct {
	key     string
	sum     string // SHA-256 of what the client sent, hex
	elapsed time.Duration
	err     error
}

// runUploadBench runs the upload memory section alone and writes its report.
func runUploadBench(ctx context.Context, o options) error {
	root, tmp, done, err := prepare(ctx, o, "edgeproxy-uploadbench-", []tool{redisTool})
	if err != nil {
		return err
	}
	defer done()
	size, sizeNote, err := fitUploads(tmp, o.upload)
	if err != nil {
		return err
	}
	logf("starting MinIO and redis-server")
	org, err := startOrigin(ctx, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer org.Close()
	if err := org.seed(ctx, nil); err != nil {
		return err
	}
	rs, err := startRedis(ctx, filepath.Join(tmp, "redis"))
	if err != nil {
		return err
	}
	defer rs.stop()
	adminPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	spool := filepath.Join(tmp, "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return err
	}
	env := append(append([]string{}, o.extraEnv...),
		"EDGEPROXY_CACHE_MEMORY_BYTES="+diskMemory,
		"EDGEPROXY_ORIGIN_S3_ENDPOINT="+org.Endpoint, // uploads write straight to MinIO, not through a relay
		"EDGEPROXY_REDIS_ADDRS="+rs.Addr,
		"EDGEPROXY_UPLOAD_ENABLED=true",
		"EDGEPROXY_UPLOAD_BUCKETS="+benchBucket,
		"EDGEPROXY_UPLOAD_TEMP_DIR="+spool,
		"EDGEPROXY_ADMIN_LISTEN="+adminAddr,
		"EDGEPROXY_ADMIN_KEY="+uploadAdminKey,
	)
	logf("starting edgeproxy with uploads on and a %s memory tier", diskMemory)
	ep, err := startServer(ctx, "edgeproxy", root, filepath.Join(tmp, "edgeproxy"), org, env)
	if err != nil {
		return err
	}
	defer ep.stop()

	tokens := make([]string, o.upload.uploads)
	for i := range tokens {
		if tokens[i], err = uploadToken(ctx, adminAddr, uploadKey(i)); err != nil {
			return err
		}
	}
	loadStart := loadAverage()
	mem := ep.proc.sampleMemory
	before := mem()
	cpu0 := ep.proc.cpuTime()

	logf("upload: %d concurrent uploads of %d MiB", o.upload.uploads, size>>20)
	var peak int64
	stopSampling := sampleEvery(250*time.Millisecond, func() { peak = max(peak, mem().RSS) })
	start := time.Now()
	results := make([]uploadResult, o.upload.uploads)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = tusUpload(ctx, ep, tokens[i], object{uploadKey(i), size})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopSampling()
	after := mem()
	cpu := ep.proc.cpuTime() - cpu0
	loadEnd := loadAverage()
	if err := ctx.Err(); err != nil {
		return err
	}

	logf("upload: reading every object back from MinIO")
	verified, failed := 0, 0
	var problems []string
	for _, r := range results {
		if r.err == nil {
			r.err = checkObject(ctx, org, r)
		}
		if r.err != nil {
			failed++
			problems = append(problems, r.err.Error())
			continue
		}
		verified++
	}
	leftover := 0
	for u := range org.client.ListIncompleteUploads(ctx, benchBucket, "", true) {
		if u.Err != nil {
			problems = append(problems, "list multipart uploads: "+u.Err.Error())
			break
		}
		leftover++
	}

	var b strings.Builder
	total := int64(o.upload.uploads) * size
	fmt.Fprintf(&b, "# edgeproxy with concurrent tus uploads\n\ncommit %s, %s, load average %s at start, %s at end (2 CPUs shared by the clients, the proxy, MinIO and Redis).\n\n",
		gitCommit(ctx, root), time.Now().UTC().Format(time.RFC3339), loadStart, loadEnd)
	fmt.Fprintf(&b, "%d uploads of %d MiB at once, each one streamed PATCH of generated data; memory tier %s, upload settings from config.yaml (part_size, max_active), spool in the run's temporary directory.%s\n\n",
		o.upload.uploads, size>>20, diskMemory, sizeNote)
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| RSS before the uploads | %s |\n", mib(before.RSS))
	fmt.Fprintf(&b, "| peak RSS, sampled every 250 ms | %s |\n", mib(peak))
	fmt.Fprintf(&b, "| peak RSS, kernel high-water mark (VmHWM) | %s |\n", mib(after.HWM))
	top := max(peak, after.HWM)
	verdict := "within"
	if top > uploadBound {
		verdict = "OVER"
	}
	fmt.Fprintf(&b, "| peak RSS against the bound (memory tier %s + 100 MiB) | %s of %s: %s |\n", diskMemory, mib(top), mib(uploadBound), verdict)
	fmt.Fprintf(&b, "| peak RSS - RSS before | %s |\n", mib(top-before.RSS))
	fmt.Fprintf(&b, "| RSS after the uploads | %s |\n", mib(after.RSS))
	fmt.Fprintf(&b, "| bytes uploaded, wall time, aggregate rate | %s, %v, %.0f MB/s |\n", mib(total), elapsed.Round(time.Second), float64(total)/1e6/elapsed.Seconds())
	fmt.Fprintf(&b, "| proxy CPU time | %.1f s (%.2f s per GiB) |\n", cpu.Seconds(), cpu.Seconds()/(float64(total)/(1<<30)))
	fmt.Fprintf(&b, "| uploads verified (SHA-256 read back from MinIO), failed | %d, %d |\n", verified, failed)
	fmt.Fprintf(&b, "| multipart uploads left in MinIO | %d |\n", leftover)
	for _, p := range problems {
		fmt.Fprintf(&b, "\nproblem: %s\n", p)
	}
	if err := writeReport(root, o.out, b.String()); err != nil {
		return err
	}
	if failed > 0 || leftover > 0 {
		return fmt.Errorf("harness: upload: %d of %d uploads failed, %d multipart uploads left", failed, o.upload.uploads, leftover)
	}
	return nil
}

func uploadKey(i int) string { return fmt.Sprintf("upload-%02d", i) }

// fitUploads returns the size each upload can have on the disk holding dir:
// the asked size, or less when MinIO's copies (uploads x size) and the
// spools would not fit with 2 GiB to spare; the note says so for the report.
func fitUploads(dir string, uo uploadOptions) (int64, string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, "", fmt.Errorf("harness: upload: free space of %s: %w", dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	const spare = 2 << 30
	n := int64(uo.uploads)
	if n*uo.size+spare <= free {
		return uo.size, "", nil
	}
	size := (free - spare) / n &^ (1<<20 - 1)
	if size < 64<<20 {
		return 0, "", fmt.Errorf("harness: upload: %s has %d MiB free, not enough for %d uploads of 64 MiB", dir, free>>20, n)
	}
	note := fmt.Sprintf(" Asked for %d MiB each; the disk had %d MiB free, so each upload is %d MiB.", uo.size>>20, free>>20, size>>20)
	logf("upload:%s", note)
	return size, note, nil
}

// uploadToken asks the admin API for a token that may upload key.
func uploadToken(ctx context.Context, adminAddr, key string) (string, error) {
	body, _ := json.Marshal(map[string]string{"bucket": benchBucket, "key": key, "ttl": "2h"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+adminAddr+"/v1/upload-tokens", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+uploadAdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("harness: upload token: %w", err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Token == "" {
		return "", fmt.Errorf("harness: upload token: status %d, %v", resp.StatusCode, err)
	}
	return out.Token, nil
}

// uploadClient sends the uploads: one connection each, no timeout but the
// run's (a 1 GiB body on a loaded machine takes minutes).
var uploadClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64, WriteBufferSize: 64 << 10}}

// tusUpload creates an upload of obj on s and sends it in one PATCH.
func tusUpload(ctx context.Context, s *server, token string, obj object) uploadResult {
	res := uploadResult{key: obj.Key}
	start := time.Now()
	do := func(method, url string, body io.Reader, hdr ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if method == http.MethodPatch {
			req.ContentLength = obj.Size
		}
		resp, err := uploadClient.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return resp, nil
	}
	resp, err := do(http.MethodPost, "http://"+s.Addr+"/uploads/", nil, "Upload-Length", fmt.Sprint(obj.Size))
	if err == nil && resp.StatusCode != http.StatusCreated {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		res.err = fmt.Errorf("%s: create: %w", obj.Key, err)
		return res
	}
	h := sha256.New()
	body := io.TeeReader(objectReader(obj), h)
	resp, err = do(http.MethodPatch, "http://"+s.Addr+resp.Header.Get("Location"), body,
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if err == nil && resp.StatusCode != http.StatusNoContent {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		res.err = fmt.Errorf("%s: patch: %w", obj.Key, err)
		return res
	}
	res.sum, res.elapsed = hex.EncodeToString(h.Sum(nil)), time.Since(start)
	return res
}

// checkObject reads r's object back from MinIO and compares its SHA-256
// with what the client sent.
func checkObject(ctx context.Context, org *origin, r uploadResult) error {
	obj, err := org.client.GetObject(ctx, benchBucket, r.key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("%s: read back: %w", r.key, err)
	}
	defer obj.Close()
	got, err := checksum.SHA256(obj)
	if err != nil {
		return fmt.Errorf("%s: read back: %w", r.key, err)
	}
	if got != r.sum {
		return errors.New(r.key + ": SHA-256 in MinIO " + got + ", sent " + r.sum)
	}
	return nil
}
