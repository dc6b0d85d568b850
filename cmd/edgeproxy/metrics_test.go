package main

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/origin"
)

// TestWrapTimedKeepsPresigning checks the latency wrapper exposes
// PresignGet exactly when the store has it, so redirect routes over a
// directory origin still answer redirect_unsupported instead of failing
// inside the wrapper.
func TestWrapTimedKeepsPresigning(t *testing.T) {
	dir, err := origin.NewDir(origin.DirConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := wrapTimed(dir); isPresigner(s) {
		t.Error("a directory origin became a Presigner through the wrapper")
	}
	s3, err := origin.NewS3(origin.S3Config{Endpoint: "127.0.0.1:9", AccessKey: "k", SecretKey: "secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := wrapTimed(s3); !isPresigner(s) {
		t.Error("an S3 origin lost PresignGet through the wrapper")
	}
}

func isPresigner(s origin.Store) bool {
	_, ok := s.(origin.Presigner)
	return ok
}
