package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/notification"
)

// MinIONotifyTarget is the ID of the Redis notification target that
// NewMinIOWithRedisEvents configures; its ARN is MinIONotifyARN.
const (
	MinIONotifyTarget = "EDGE"
	MinIONotifyARN    = "arn:minio:sqs::" + MinIONotifyTarget + ":redis"
)

// NewMinIOWithRedisEvents starts a MinIO server for this test alone whose
// Redis notification target (format "access") pushes bucket events onto
// the list key of the redis-server at redisAddr. Buckets send events to it
// once NotifyBucket has been called for them.
func NewMinIOWithRedisEvents(t testing.TB, redisAddr, key string) *MinIOServer {
	t.Helper()
	id := MinIONotifyTarget
	s, err := StartMinIO(context.Background(), t.TempDir(),
		"MINIO_NOTIFY_REDIS_ENABLE_"+id+"=on",
		"MINIO_NOTIFY_REDIS_ADDRESS_"+id+"="+redisAddr,
		"MINIO_NOTIFY_REDIS_KEY_"+id+"="+key,
		"MINIO_NOTIFY_REDIS_FORMAT_"+id+"=access",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NotifyBucket sends the object created and removed events of bucket to
// the server's Redis target (what `mc event add ALIAS/BUCKET ARN` does).
func (s *MinIOServer) NotifyBucket(t testing.TB, bucket string) {
	t.Helper()
	arn, err := notification.NewArnFromString(MinIONotifyARN)
	if err != nil {
		t.Fatal(err)
	}
	q := notification.NewConfig(arn)
	q.AddEvents(notification.ObjectCreatedAll, notification.ObjectRemovedAll)
	var cfg notification.Configuration
	cfg.AddQueue(q)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).SetBucketNotification(ctx, bucket, cfg); err != nil {
		t.Fatalf("testenv: bucket notification for %s: %v", bucket, err)
	}
}
