package origin

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// Change notifications. MinIO publishes an event for every object
// written or deleted to the notification targets configured on the
// server; with its Redis target in the "access" format each event is one
// list element: a JSON array of {"Event": [records], "EventTime": ...}.
// ParseEvents turns such an element into the objects it names, so that
// an edge can drop them from its cache at once instead of waiting for
// cache.meta_ttl.
//
// (MinIO's streaming ListenBucketNotification API would need no server
// configuration, but recent MinIO builds wrap S3 responses in a writer
// that drops Flush, so the stream delivers nothing until kilobytes have
// queued: unusable for invalidation.)

// Change is one object that was created, overwritten or deleted.
type Change struct {
	Bucket, Key string
}

// accessEvent is one element of MinIO's Redis "access" format.
type accessEvent struct {
	Event []struct {
		S3 struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Event"`
}

// ParseEvents returns the objects named by one list element of MinIO's
// Redis notification target (format "access"). Keys arrive query-escaped,
// as in S3 events ("a b" is "a+b"); a record whose key does not unescape,
// or with an empty bucket or key, is an error rather than a purge of the
// wrong object.
func ParseEvents(data []byte) ([]Change, error) {
	var evs []accessEvent
	if err := json.Unmarshal(data, &evs); err != nil {
		return nil, fmt.Errorf("origin: parse events: %w", err)
	}
	var out []Change
	for _, ev := range evs {
		for _, r := range ev.Event {
			key, err := url.QueryUnescape(r.S3.Object.Key)
			if err != nil {
				return nil, fmt.Errorf("origin: parse events: key %q: %w", r.S3.Object.Key, err)
			}
			if r.S3.Bucket.Name == "" || key == "" {
				return nil, fmt.Errorf("origin: parse events: record without bucket or key")
			}
			out = append(out, Change{Bucket: r.S3.Bucket.Name, Key: key})
		}
	}
	return out, nil
}
