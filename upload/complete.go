package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/valyala/fasthttp"

	"github.com/edgeproxy/edgeproxy/auth"
)

// completeLocked turns the last bytes into the last part, checks the
// declared SHA-256 before the object becomes visible, completes the
// multipart upload and makes the file downloadable: catalog entry, cache
// purge on every node. A partial upload completes into its staging object
// instead, for a final upload to copy.
func (u *Uploads) completeLocked(c context.Context, st *state, sp *spool, fileHash hash.Hash, l *lock) *apiError {
	digest := hex.EncodeToString(fileHash.Sum(nil))
	if st.SHA256 != "" && digest != st.SHA256 {
		u.log.Warn("upload: sha256 mismatch; discarded", "upload", logID(st.ID), "bucket", st.Bucket)
		if err := u.discard(c, st); err != nil {
			u.log.Error("upload: discard", "upload", logID(st.ID), "err", err)
		}
		return errFileChecksum
	}
	if st.Length == 0 {
		// S3 completes no multipart upload without a part: write the empty
		// object and drop the multipart upload.
		if _, err := u.s3().PutObject(c, st.Bucket, st.Key, strings.NewReader(""), 0, "", "", minio.PutObjectOptions{ContentType: st.ContentType}); err != nil {
			return u.storeFailed(st, err)
		}
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
	} else {
		parts := st.Parts
		if n := sp.pending(); n > 0 {
			var err error
			if parts, err = u.putPart(c, st, parts, sp, n, l); err != nil {
				return u.storeFailed(st, err)
			}
		}
		cp := make([]minio.CompletePart, len(parts))
		for i, p := range parts {
			cp[i] = minio.CompletePart{PartNumber: p.N, ETag: p.ETag}
		}
		if !l.held() {
			return errLocked
		}
		if _, err := u.s3().CompleteMultipartUpload(c, st.Bucket, st.Key, st.S3Upload, cp, minio.PutObjectOptions{ContentType: st.ContentType}); err != nil {
			return u.storeFailed(st, err)
		}
		st.Parts = parts
	}
	u.tails.drop(st.ID)
	if st.Tail > 0 && !st.Partial {
		u.s3().RemoveObject(c, st.Bucket, u.stagingKey(st.ID), minio.RemoveObjectOptions{})
	}
	st.Tail, st.TailETag = 0, ""
	st.Done = true
	st.SHA256 = digest
	return u.finish(c, st)
}

// finish records a completed upload: the state (Done, so HEAD still
// answers), the catalog entry and the purge of cached older versions.
func (u *Uploads) finish(c context.Context, st *state) *apiError {
	if err := u.saveLocked(c, st); err != nil {
		u.log.Error("upload: save", "upload", logID(st.ID), "err", err)
		return errState
	}
	u.rdb.HDel(c, u.liveKey(), st.S3Upload)
	if st.Partial {
		return nil
	}
	return u.registerLocked(c, st)
}

// registerLocked makes a complete file downloadable: catalog entry, purge
// of cached older versions; then marks the state Registered. A failure
// leaves it unregistered for the client's retry (a PATCH) to redo.
func (u *Uploads) registerLocked(c context.Context, st *state) *apiError {
	if u.catalog != nil {
		err := u.catalog.Put(c, auth.FileMeta{ID: st.FileID, Bucket: st.Bucket, Key: st.Key, Filename: st.Filename,
			SHA256: st.SHA256, Size: st.Length, ContentType: st.ContentType})
		if err != nil {
			// The object is complete; only its registration failed. The
			// client sees an error and the state keeps the facts to redo it.
			u.log.Error("upload: catalog", "upload", logID(st.ID), "file", st.FileID, "err", err)
			return errState
		}
	}
	u.purge(c, st.Bucket, st.Key)
	st.Registered = true
	if err := u.saveLocked(c, st); err != nil {
		u.log.Error("upload: save", "upload", logID(st.ID), "err", err)
		return errState
	}
	return nil
}

// purge drops cached copies of bucket/key here and, through Redis, on
// every other node (Subscribe).
func (u *Uploads) purge(c context.Context, bucket, key string) {
	if u.purger != nil {
		u.purger.Purge(bucket, key)
	}
	if err := u.rdb.Publish(c, u.cfg.PurgeChannel, bucket+"/"+key).Err(); err != nil {
		u.log.Error("upload: purge broadcast", "bucket", bucket, "err", err)
	}
}

// Subscribe applies the purges other nodes broadcast to this node's
// Purger until ctx ends. Run it in its own goroutine; it resubscribes
// after Redis outages (go-redis does).
func (u *Uploads) Subscribe(ctx context.Context) {
	if u.purger == nil {
		return
	}
	ps := u.rdb.Subscribe(ctx, u.cfg.PurgeChannel)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if bucket, key, ok := strings.Cut(m.Payload, "/"); ok {
				u.purger.Purge(bucket, key)
			}
		}
	}
}

// createFinal answers a POST with Upload-Concat: final: the partial
// uploads, complete and created with the same token, are copied part by
// part (S3 UploadPartCopy, no bytes through the edge) into the file. The
// declared SHA-256 cannot be combined from the partials' digests, so it is
// checked by reading the partials back from the store before the file is
// completed.
func (u *Uploads) createFinal(ctx *fasthttp.RequestCtx, c context.Context, st *state, ids []string, maxSize int64, signed string) {
	parts := make([]*state, len(ids))
	for i, id := range ids {
		p, e := u.loadLive(c, id)
		if e != nil || p.TokenHash != st.TokenHash || !p.Partial || !p.Done ||
			(i < len(ids)-1 && p.Length < minPartSize) || p.Length > 5<<30 {
			u.refuse(ctx, errConcatBad)
			return
		}
		parts[i] = p
		st.Length += p.Length
	}
	if st.Length > maxSize {
		u.refuse(ctx, errTooLarge)
		return
	}
	st.Final = ids
	// Reading the partials back takes time in proportion to their size.
	c, cancel := context.WithTimeout(context.Background(), opTimeout+partTimeout(st.Length))
	defer cancel()
	digest, err := u.readDigest(c, st, parts)
	if err != nil {
		u.log.Error("upload: concat read", "err", err)
		u.refuse(ctx, errStore)
		return
	}
	if st.SHA256 != "" && digest != st.SHA256 {
		u.refuse(ctx, errFileChecksum)
		return
	}
	st.SHA256 = digest
	if st.S3Upload, err = u.s3().NewMultipartUpload(c, st.Bucket, st.Key, minio.PutObjectOptions{ContentType: st.ContentType}); err != nil {
		u.refuse(ctx, errStore)
		return
	}
	l, err := u.acquire(c, st.ID)
	if err != nil {
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
		u.refuse(ctx, errState)
		return
	}
	defer l.release()
	cp := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		op, err := u.s3().CopyObjectPart(c, p.Bucket, u.stagingKey(p.ID), st.Bucket, st.Key, st.S3Upload, i+1, 0, -1, nil)
		if err != nil {
			u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
			u.log.Error("upload: concat copy", "err", err)
			u.refuse(ctx, errStore)
			return
		}
		cp[i] = minio.CompletePart{PartNumber: i + 1, ETag: op.ETag}
		st.Parts = append(st.Parts, part{N: i + 1, ETag: op.ETag, Size: p.Length})
	}
	if _, err := u.s3().CompleteMultipartUpload(c, st.Bucket, st.Key, st.S3Upload, cp, minio.PutObjectOptions{ContentType: st.ContentType}); err != nil {
		u.s3().AbortMultipartUpload(c, st.Bucket, st.Key, st.S3Upload)
		u.refuse(ctx, errStore)
		return
	}
	st.Offset, st.Done = st.Length, true
	st.Expires = u.now().Add(u.cfg.Expiry)
	if e := u.finish(c, st); e != nil {
		u.refuse(ctx, e)
		return
	}
	for _, p := range parts { // the partials have served their purpose
		u.discard(c, p)
	}
	ctx.Response.Header.Set("Location", u.location(st.ID, signed))
	ctx.Response.Header.Set("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	ctx.SetStatusCode(fasthttp.StatusCreated)
}

// readDigest is the SHA-256 of the partials' bytes, in order, read back
// from their staging objects.
func (u *Uploads) readDigest(c context.Context, st *state, parts []*state) (string, error) {
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for _, p := range parts {
		rc, _, _, err := u.s3().GetObject(c, p.Bucket, u.stagingKey(p.ID), minio.GetObjectOptions{})
		if err != nil {
			return "", err
		}
		n, err := io.CopyBuffer(h, rc, *bp)
		rc.Close()
		if err != nil {
			return "", err
		}
		if n != p.Length {
			return "", fmt.Errorf("upload: partial %s: %d of %d bytes", logID(p.ID), n, p.Length)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
