package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/limiter"
)

// copyBufSize is the read size from the client: large enough that a
// 1 GiB body is 4096 reads, small enough that 64 uploads in progress hold
// 16 MiB of buffers.
const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// writeLocked streams the request body into the upload st, whose lock l
// is held: whole parts go to S3 as they fill, the rest to the staging
// object, and the new offset and hash state to Redis last, so that the
// offset any node reports is always durable. When the client goes away
// mid-body, the bytes received are kept (tus lets the client resume from
// them); with Upload-Checksum nothing of a body that does not match is kept.
func (u *Uploads) writeLocked(ctx *fasthttp.RequestCtx, st *state, l *lock, lease *limiter.Lease) *apiError {
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	remaining := st.Length - st.Offset
	cl := int64(ctx.Request.Header.ContentLength())
	if cl > remaining {
		return errBeyondLength
	}
	var sum *checksum
	var sumHash hash.Hash
	if v := ctx.Request.Header.Peek("Upload-Checksum"); len(v) > 0 {
		cs, err := parseChecksum(string(v))
		if err != nil {
			return errChecksumBad
		}
		if cl > u.cfg.PartSize {
			return errChecksumLarge
		}
		sum, sumHash = &cs, newHash(cs.alg)
	}
	sp, err := u.newSpool()
	if err != nil {
		u.log.Error("upload: spool", "err", err)
		return errInternal
	}
	spools := []*spool{sp}
	defer func() {
		for _, s := range spools {
			s.close()
		}
	}()
	if err := u.loadTail(c, st, sp); err != nil {
		u.log.Error("upload: read staged part", "upload", logID(st.ID), "err", err)
		return errStore
	}
	fileHash := sha256.New()
	if err := fileHash.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		u.log.Error("upload: hash state", "upload", logID(st.ID), "err", err)
		return errInternal
	}

	// While streaming, full parts go to S3 in the background as the next
	// one is received into another spool: at most partsInFlight at once,
	// recorded oldest first, so the parts in the state stay contiguous (a
	// part that lands after one that failed is sent again by the resumed
	// PATCH under the same number). The disk holds partsInFlight+1 parts.
	var flights []*partUpload
	var spares []*spool
	defer func() {
		for _, f := range flights {
			<-f.done
		}
	}()
	parts := st.Parts
	land := func() error { // waits for the oldest part in flight
		f := flights[0]
		<-f.done
		flights = flights[1:]
		spares = append(spares, f.sp)
		if f.err != nil {
			return f.err
		}
		parts = append(parts, f.p)
		return nil
	}
	landAll := func() error {
		for len(flights) > 0 {
			if err := land(); err != nil {
				return err
			}
		}
		return nil
	}

	body := u.body(ctx, lease)
	defer body.Close()
	limit := remaining
	if sum != nil && u.cfg.PartSize < limit {
		limit = u.cfg.PartSize
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var received int64
	var readErr error
	for readErr == nil {
		buf := *bp
		if sum == nil { // cut at part boundaries while streaming
			if room := u.cfg.PartSize - sp.pending(); room < int64(len(buf)) {
				buf = buf[:room]
			}
		}
		if left := limit - received; left < int64(len(buf)) {
			buf = buf[:left+1] // one byte more reveals a body that is too long
		}
		n, err := body.Read(buf)
		if received+int64(n) > limit {
			if sum != nil && limit < remaining {
				return errChecksumLarge
			}
			n = int(limit - received)
			readErr = errTooLong
		}
		if n > 0 {
			if werr := sp.write(buf[:n]); werr != nil {
				u.log.Error("upload: spool", "err", werr)
				return errInternal
			}
			fileHash.Write(buf[:n])
			if sumHash != nil {
				sumHash.Write(buf[:n])
			}
			received += int64(n)
		}
		if err != nil && readErr == nil {
			readErr = err
		}
		if sum == nil && sp.pending() == u.cfg.PartSize {
			if len(flights) == partsInFlight {
				if err := land(); err != nil {
					return u.storeFailed(st, err)
				}
			}
			if !l.held() {
				return errLocked
			}
			f := &partUpload{done: make(chan struct{}), sp: sp}
			num := len(parts) + len(flights) + 1
			go func() {
				defer close(f.done)
				f.p, f.err = u.uploadPart(c, st, num, f.sp, u.cfg.PartSize)
			}()
			flights = append(flights, f)
			if k := len(spares); k > 0 {
				sp, spares = spares[k-1], spares[:k-1]
			} else {
				if sp, err = u.newSpool(); err != nil {
					u.log.Error("upload: spool", "err", err)
					return errInternal
				}
				spools = append(spools, sp)
			}
		}
	}
	if err := landAll(); err != nil {
		return u.storeFailed(st, err)
	}
	if errors.Is(readErr, errTooLong) {
		// Content-Length was checked; only a chunked body gets here.
		return errBeyondLength
	}
	clientGone := !errors.Is(readErr, io.EOF)
	if sum != nil {
		if clientGone || !bytes.Equal(sumHash.Sum(nil), sum.digest) {
			return errChecksum // nothing of this body reached S3
		}
		for sp.pending() >= u.cfg.PartSize {
			if parts, err = u.putPart(c, st, parts, sp, u.cfg.PartSize, l); err != nil {
				return u.storeFailed(st, err)
			}
		}
	}
	if clientGone && received == 0 && len(parts) == len(st.Parts) {
		return errClientGone
	}
	st.Parts = parts
	st.Offset += received
	st.Hash, _ = fileHash.(encoding.BinaryMarshaler).MarshalBinary()
	st.Expires = u.now().Add(u.cfg.Expiry)
	if st.Offset == st.Length {
		if e := u.completeLocked(c, st, sp, fileHash, l); e != nil {
			return e
		}
		return nil
	}
	if err := u.stageTail(c, st, sp); err != nil {
		return u.storeFailed(st, err)
	}
	if !l.held() {
		return errLocked
	}
	if err := u.saveLocked(c, st); err != nil {
		u.log.Error("upload: save", "upload", logID(st.ID), "err", err)
		return errState
	}
	if clientGone {
		return errClientGone
	}
	return nil
}

var (
	errTooLong = errors.New("upload: body longer than allowed")
	// errClientGone ends a PATCH whose client stopped sending; what was
	// received is kept, and nobody reads the answer.
	errClientGone = newError(400, "incomplete_body", "the body ended early; resume from Upload-Offset")
)

// storeFailed logs a store error and picks the answer; the state in Redis
// is untouched, so the offset stays where the durable bytes end.
func (u *Uploads) storeFailed(st *state, err error) *apiError {
	if errors.Is(err, errLockLost) {
		return errLocked
	}
	u.log.Error("upload: store", "upload", logID(st.ID), "bucket", st.Bucket, "err", err)
	return errStore
}

var errLockLost = errors.New("upload: lock lost")

// partsInFlight bounds the parts of one PATCH on their way to S3 at once.
// While one part waits for the store's answer (MinIO writes and closes
// each part before it answers) the next is already sent: with 8 MiB parts
// BenchmarkUploadVsDirect measured the edge at 1.03x direct minio-go with
// one in flight, 1.40x with two, 1.47x with three. Two keeps most of the
// gain for one more part of disk per PATCH (Config.TempDir).
const partsInFlight = 2

// partUpload is a part on its way to S3 from spool sp.
type partUpload struct {
	done chan struct{}
	sp   *spool
	p    part
	err  error
}

// putPart uploads n pending spool bytes as the next part and appends it.
func (u *Uploads) putPart(c context.Context, st *state, parts []part, sp *spool, n int64, l *lock) ([]part, error) {
	if !l.held() {
		return parts, errLockLost
	}
	p, err := u.uploadPart(c, st, len(parts)+1, sp, n)
	if err != nil {
		return parts, err
	}
	return append(parts, p), nil
}

// uploadPart uploads the first n pending bytes of sp as part num.
func (u *Uploads) uploadPart(c context.Context, st *state, num int, sp *spool, n int64) (part, error) {
	if num > s3MaxParts {
		return part{}, fmt.Errorf("upload: part %d exceeds S3's %d parts", num, s3MaxParts)
	}
	// A part sent again under its number replaces the first copy, so a
	// part cut by a node's failure is sent again from the spool (a fresh
	// section each time: the body of the failed attempt may still be read
	// by its connection) on the node the pool picks, at once when one is
	// left untried. The timeout bounds each attempt.
	crc, err := sp.partCRC(n)
	if err != nil {
		return part{}, fmt.Errorf("upload: part %d: %w", num, err)
	}
	opts := partOptions(crc)
	var p minio.ObjectPart
	err = u.store.Do(c, func(s3 *minio.Core) error {
		pc, cancel := context.WithTimeout(c, partTimeout(n))
		defer cancel()
		var err error
		p, err = s3.PutObjectPart(pc, st.Bucket, st.Key, st.S3Upload, num, sp.section(n), n, opts)
		return err
	})
	if err != nil {
		return part{}, fmt.Errorf("upload: put part %d: %w", num, err)
	}
	if err := sp.consumed(n); err != nil {
		return part{}, err
	}
	return part{N: num, ETag: p.ETag, Size: n}, nil
}

// partOptions sends a part with an unsigned payload and its CRC32C, which
// the store checks. By default minio-go signs the payload of every part
// over plain HTTP (streaming SigV4: a SHA-256 and an HMAC per 64 KiB
// chunk, and the store computes them again), which cost a quarter of the
// edge's upload throughput in BenchmarkUploadVsDirect; over TLS it sends
// UNSIGNED-PAYLOAD anyway. The CRC32C (hardware, several GB/s) still
// catches a body damaged on its way to the store; what it does not do is
// authenticate the bytes against an attacker on a plain-HTTP path to the
// origin, who could already alter every download from it. crc is the
// part's CRC32C, which the spool computed as the bytes came in.
func partOptions(crc uint32) minio.PutObjectPartOptions {
	return minio.PutObjectPartOptions{
		DisableContentSha256: true,
		CustomHeader:         http.Header{"X-Amz-Checksum-Crc32c": {base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc))}},
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// partTimeout bounds one attempt of a part upload: a minute plus a second per MiB
// (the store must accept at least 1 MiB/s).
func partTimeout(n int64) time.Duration { return time.Minute + time.Duration(n>>20)*time.Second }

// loadTail puts the staged incomplete part, if any, at the start of sp. The
// state names its length and ETag, so a staging object that does not match
// (a write the state never recorded) is an error, never spliced in.
func (u *Uploads) loadTail(c context.Context, st *state, sp *spool) error {
	if st.Tail == 0 {
		return nil
	}
	// A tail of a part size larger than ours (another node's config) is
	// more than one run of this spool: it is fetched and summed in runs.
	if f, crc, ok := u.tails.take(st.ID, st.TailETag, st.Tail); ok && st.Tail < sp.partSize {
		sp.adopt(f, st.Tail, crc)
		return nil
	} else if ok {
		f.Close()
		os.Remove(f.Name())
	}
	var rc io.ReadCloser
	var info minio.ObjectInfo
	err := u.store.Do(c, func(s3 *minio.Core) error {
		var err error
		rc, info, _, err = s3.GetObject(c, st.Bucket, u.stagingKey(st.ID), minio.GetObjectOptions{})
		return err
	})
	if err != nil {
		return err
	}
	defer rc.Close()
	if info.Size != st.Tail || info.ETag != st.TailETag {
		return fmt.Errorf("upload: staged part is %d bytes, etag %q; state says %d, %q", info.Size, info.ETag, st.Tail, st.TailETag)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Through write, so that the tail's bytes count in the part checksums.
	n, err := io.CopyBuffer(sp, io.LimitReader(rc, st.Tail+1), *bp)
	if err != nil {
		return err
	}
	if n != st.Tail {
		return fmt.Errorf("upload: staged part: read %d of %d bytes", n, st.Tail)
	}
	return nil
}

// stageTail stores sp's pending bytes as the staging object (or deletes
// it when there are none), for whichever node gets the next PATCH.
func (u *Uploads) stageTail(c context.Context, st *state, sp *spool) error {
	n := sp.pending()
	if n == 0 {
		if st.Tail > 0 {
			if err := u.store.Do(c, func(s3 *minio.Core) error {
				return s3.RemoveObject(c, st.Bucket, u.stagingKey(st.ID), minio.RemoveObjectOptions{})
			}); err != nil {
				return err
			}
		}
		st.Tail, st.TailETag = 0, ""
		return nil
	}
	var info minio.UploadInfo
	err := u.store.Do(c, func(s3 *minio.Core) error {
		var err error
		info, err = s3.PutObject(c, st.Bucket, u.stagingKey(st.ID), sp.section(n), n, "", "", minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("upload: stage part: %w", err)
	}
	st.Tail, st.TailETag = n, info.ETag
	// When the file is exactly the tail, keep it for this node's next
	// PATCH, with its checksum so far.
	if crc, err := sp.partCRC(n); sp.start == 0 && err == nil {
		u.tails.put(st.ID, sp.f, info.ETag, n, crc)
		sp.kept = true
	}
	return nil
}

// body is the request body, read with an idle timeout and shaped to the
// client's upload rate.
func (u *Uploads) body(ctx *fasthttp.RequestCtx, lease *limiter.Lease) io.ReadCloser {
	var r io.Reader = ctx.RequestBodyStream()
	if r == nil {
		r = bytes.NewReader(ctx.Request.Body())
	}
	var rc io.ReadCloser = idleReader{r: r, ctx: ctx, idle: u.cfg.IdleTimeout}
	if u.limiter != nil {
		rc = u.limiter.Shape(rc, lease, u.rate)
	}
	return rc
}

// idleReader moves the connection's read deadline before each read: the
// listener's read timeout bounds a request's header, and a large body may
// take hours, but a client silent for IdleTimeout is gone.
type idleReader struct {
	r    io.Reader
	ctx  *fasthttp.RequestCtx
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if r.idle > 0 {
		r.ctx.Conn().SetReadDeadline(time.Now().Add(r.idle))
	}
	return r.r.Read(p)
}

func (r idleReader) Close() error { return nil }
