package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestFor(t *testing.T) {
	var buf bytes.Buffer
	For(slog.New(slog.NewTextHandler(&buf, nil)), "cache").Info("hello")
	if got := buf.String(); !strings.Contains(got, "msg=hello component=cache") {
		t.Fatalf("line %q: want component=cache", got)
	}
	l := For(nil, "cache")
	if l == nil || l.Handler().Enabled(t.Context(), slog.LevelError) {
		t.Fatal("a nil logger must become one that discards")
	}
	l.Error("dropped") // must not panic
}
