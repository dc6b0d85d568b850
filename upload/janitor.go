package upload

import (
	"context"
	"errors"
	"time"

	"github.com/minio/minio-go/v7"
)

// Run runs the janitor every JanitorInterval until ctx ends (a negative
// interval disables it). On each tick one node, the one that takes the
// janitor's Redis lock, sweeps; the others skip the tick.
func (u *Uploads) Run(ctx context.Context) {
	if u.cfg.JanitorInterval < 0 {
		return
	}
	t := time.NewTicker(u.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := u.Sweep(ctx); err != nil && ctx.Err() == nil {
				u.log.Error("upload janitor", "err", err)
			}
		}
	}
}

// SweepResult counts what one sweep removed.
type SweepResult struct {
	// Aborted multipart uploads; Staged objects deleted; States deleted.
	Aborted, Staged, States int
	// Skipped is true when another node held the janitor lock.
	Skipped bool
}

// Sweep aborts, in every bucket of Config.Buckets, the S3 multipart uploads
// that no live upload owns and that began more than Expiry ago, and
// deletes staging objects of the same kind: what expired uploads left, and
// what a node that crashed between creating a multipart upload and saving
// its state left. A live upload (state present, not expired) is never
// touched. Only one node sweeps at a time (a Redis lock).
func (u *Uploads) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	l, err := u.acquire(ctx, "janitor")
	if errors.Is(err, errHeld) {
		res.Skipped = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer l.release()
	cutoff := u.now().Add(-u.cfg.Expiry)
	for _, b := range u.cfg.Buckets {
		if err := u.sweepMultipart(ctx, b, cutoff, &res); err != nil {
			return res, err
		}
		if err := u.sweepStaging(ctx, b, cutoff, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// live reports whether upload id is still resumable or complete.
func (u *Uploads) live(ctx context.Context, id string) (bool, *state, error) {
	if id == "" {
		return false, nil, nil
	}
	st, err := u.load(ctx, id)
	if errors.Is(err, errNoUpload) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	return st.Done || !u.now().After(st.Expires), st, nil
}

// maxSweepPages bounds one sweep's listing: 1000 uploads a page.
const maxSweepPages = 100

func (u *Uploads) sweepMultipart(ctx context.Context, bucket string, cutoff time.Time, res *SweepResult) error {
	var keyMarker, idMarker string
	for page := 0; page < maxSweepPages; page++ {
		r, err := u.s3().ListMultipartUploads(ctx, bucket, "", keyMarker, idMarker, "", 1000)
		if err != nil {
			return err
		}
		for _, m := range r.Uploads {
			id, _ := u.rdb.HGet(ctx, u.liveKey(), m.UploadID).Result()
			alive, st, err := u.live(ctx, id)
			if err != nil {
				return err
			}
			if alive && !st.Done {
				continue
			}
			// Without state, only old ones: a younger one may be an upload
			// being created right now (state not saved yet).
			if st == nil && m.Initiated.After(cutoff) {
				continue
			}
			if err := u.s3().AbortMultipartUpload(ctx, bucket, m.Key, m.UploadID); err != nil && !isNoSuchUpload(err) {
				return err
			}
			res.Aborted++
			u.rdb.HDel(ctx, u.liveKey(), m.UploadID)
			if st != nil && !st.Done {
				u.rdb.Del(ctx, u.stateKey(id))
				res.States++
			}
		}
		if !r.IsTruncated {
			return nil
		}
		keyMarker, idMarker = r.NextKeyMarker, r.NextUploadIDMarker
	}
	return nil
}

func (u *Uploads) sweepStaging(ctx context.Context, bucket string, cutoff time.Time, res *SweepResult) error {
	lc, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range u.s3().Client.ListObjects(lc, bucket, minio.ListObjectsOptions{Prefix: u.cfg.StagingPrefix, Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		id := obj.Key[len(u.cfg.StagingPrefix):]
		alive, st, err := u.live(ctx, id)
		if err != nil {
			return err
		}
		if alive || (st == nil && obj.LastModified.After(cutoff)) {
			continue
		}
		if err := u.s3().RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return err
		}
		res.Staged++
		if st != nil {
			u.rdb.Del(ctx, u.stateKey(id))
			res.States++
		}
	}
	return nil
}
