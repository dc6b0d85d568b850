package origin

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7/pkg/notification"
)

// Change notifications. MinIO streams the events of a bucket to any client
// that asks (its ListenBucketNotification API: a long GET that stays open
// and carries one JSON line per event), with no notification target to
// configure on the server. WatchChanges keeps such a stream open and tells
// its caller about every object created, overwritten or deleted, so an
// edge can drop what it cached instead of waiting for its metadata TTL.
//
// A stream delivers at most once: while it is down, events are lost. So
// every time a stream fails, the handler's Gap is called before it is
// reopened: the caller must then treat everything it knows about that
// bucket as unverified (the edge expires its metadata, so each next
// request revalidates with one HEAD).

// changeEvents are the MinIO event types that make cached bytes or
// metadata wrong: any new version of an object, and its removal.
var changeEvents = []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}

// ChangeHandler receives what WatchChanges learns. Its methods are called
// from one goroutine per watched bucket and must not block for long: the
// stream is not read while they run.
type ChangeHandler interface {
	// Changed reports that bucket/key was written or deleted.
	Changed(bucket, key string)
	// Gap reports that events of bucket may have been missed ("" for
	// every bucket).
	Gap(bucket string)
}

// Watch backoff: a failing stream is reopened after watchBackoffMin,
// doubled per consecutive failure up to watchBackoffMax.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 5 * time.Second
)

// WatchChanges streams the object changes of bucket ("" for every bucket
// the credentials may listen to) to h until ctx ends, reopening the stream
// with capped exponential backoff when it fails and reporting each such
// failure as a Gap. It needs the s3:ListenBucketNotification permission
// on the bucket (s3:ListenNotification for ""). It returns ctx's error.
//
// minio-go reopens a stream that the server ends cleanly by itself,
// without telling us; MinIO ends streams only when it shuts down, and a
// node that dies breaks the connection, which is reported.
func (s *S3) WatchChanges(ctx context.Context, bucket string, h ChangeHandler, onErr func(error)) error {
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		err := s.watchOnce(ctx, bucket, h, func() { backoff = watchBackoffMin })
		if ctx.Err() != nil {
			break
		}
		if onErr != nil {
			onErr(err)
		}
		h.Gap(bucket)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
	return ctx.Err()
}

// watchOnce reads one stream until it reports an error. healthy is called
// on every event, to reset the caller's backoff.
func (s *S3) watchOnce(ctx context.Context, bucket string, h ChangeHandler, healthy func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends minio-go's reader goroutine and its request
	for info := range s.core.ListenBucketNotification(ctx, bucket, "", "", changeEvents) {
		if info.Err != nil {
			return fmt.Errorf("origin: listen %q: %w", bucket, info.Err)
		}
		healthy()
		for _, ev := range info.Records {
			b, k, ok := eventObject(ev)
			if ok {
				h.Changed(b, k)
			}
		}
	}
	return fmt.Errorf("origin: listen %q: stream closed", bucket)
}

// eventObject returns the bucket and key an event names. MinIO sends the
// key query-escaped (a space is "+"), as S3 does; an event whose key does
// not unescape is dropped rather than purging the wrong object.
func eventObject(ev notification.Event) (bucket, key string, ok bool) {
	k, err := url.QueryUnescape(ev.S3.Object.Key)
	if err != nil || ev.S3.Bucket.Name == "" || k == "" {
		return "", "", false
	}
	return ev.S3.Bucket.Name, k, true
}
