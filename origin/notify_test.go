package origin

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseEvents(t *testing.T) {
	bad := []string{
		``,
		`{}`,
		`[{"Event":[{"s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}]`,
		`[{"Event":[{"s3":{"bucket":{"name":""},"object":{"key":"k"}}}]}]`,
		`[{"Event":[{"s3":{"bucket":{"name":"b"},"object":{"key":""}}}]}]`,
	}
	for _, in := range bad {
		if got, err := ParseEvents([]byte(in)); err == nil {
			t.Errorf("ParseEvents(%q) = %v, want an error", in, got)
		}
	}
	good := []struct {
		in   string
		want []Change
	}{
		{`[]`, nil},
		{`[{"Event":[],"EventTime":"x"}]`, nil},
		// As MinIO sends it: a put, with the key query-escaped.
		{`[{"Event":[{"eventVersion":"2.0","eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put",` +
			`"s3":{"bucket":{"name":"files","arn":"arn:aws:s3:::files"},"object":{"key":"dir%2Fa+b%C3%A9.bin","size":3,"eTag":"x"}}}],` +
			`"EventTime":"2026-11-29T20:00:00.000Z"}]`,
			[]Change{{"files", "dir/a bé.bin"}}},
		{`[{"Event":[{"s3":{"bucket":{"name":"b"},"object":{"key":"1"}}},{"s3":{"bucket":{"name":"b"},"object":{"key":"2"}}}]}]`,
			[]Change{{"b", "1"}, {"b", "2"}}},
	}
	for _, tc := range good {
		got, err := ParseEvents([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseEvents(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseEvents: no panic, and every change names a bucket and a key.
func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`[{"Event":[{"s3":{"bucket":{"name":"b"},"object":{"key":"a+b"}}}]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseEvents(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, c := range got {
			if c.Bucket == "" || c.Key == "" {
				t.Fatalf("change %+v from %q", c, data)
			}
		}
	})
}
