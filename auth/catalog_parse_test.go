package auth

import (
	"errors"
	"testing"
	"time"
)

func TestParseFileMeta(t *testing.T) {
	bad := []map[string]string{
		{},
		{"bucket": "b"},
		{"key": "k"},
		{"bucket": "b", "key": "k", "size": "-1"},
		{"bucket": "b", "key": "k", "size": "big"},
		{"bucket": "b", "key": "k", "created_at": "yesterday"},
		{"bucket": "b", "key": "k", "updated_at": "-5"},
	}
	for _, h := range bad {
		if m, err := ParseFileMeta("1", h); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("ParseFileMeta(%v) = %+v, %v; want ErrMalformedRecord", h, m, err)
		}
	}
	m, err := ParseFileMeta("10086", map[string]string{
		"bucket": "dl", "key": "a/b.iso", "filename": "b.iso", "sha256": "ab", "size": "42",
		"content_type": "application/x-iso9660-image", "created_at": "1700000000",
		"updated_at": "2024-01-02T03:04:05Z", "extra": "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := FileMeta{ID: "10086", Bucket: "dl", Key: "a/b.iso", Filename: "b.iso", SHA256: "ab", Size: 42,
		ContentType: "application/x-iso9660-image", CreatedAt: time.Unix(1700000000, 0).UTC(),
		UpdatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	if m != want {
		t.Fatalf("ParseFileMeta = %+v, want %+v", m, want)
	}
}

func FuzzParseFileMeta(f *testing.F) {
	f.Add("b", "k", "42", "1700000000", "2024-01-02T03:04:05Z")
	f.Add("", "", "-1", "x", "")
	f.Fuzz(func(t *testing.T, bucket, key, size, created, updated string) {
		m, err := ParseFileMeta("id", map[string]string{
			"bucket": bucket, "key": key, "size": size, "created_at": created, "updated_at": updated,
		})
		if err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error does not wrap ErrMalformedRecord: %v", err)
			}
			return
		}
		if m.Bucket == "" || m.Key == "" || m.Size < 0 {
			t.Fatalf("accepted invalid meta %+v", m)
		}
	})
}
