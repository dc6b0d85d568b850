package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`invalid header value "Bearer SECRET\x01": buffer size=70`, `invalid header value "[redacted]": buffer size=70`},
		{`invalid header value "download_token=SECRET\rX"`, `invalid header value "[redacted]"`},
		{`a "x\"SECRET\"y" b`, `a "[redacted]" b`},
		{`unterminated "SECRET`, `unterminated "[redacted]"`},
		{`contents: "GET /a?token=SECRET HTTP/1.1\r\n"..."x"`, `contents: "[redacted]"..."[redacted]"`},
		{`GET /download/x?token=SECRET HTTP/1.1`, `GET /download/x?[redacted] HTTP/1.1`},
		{"Authorization: Bearer SECRET\nnext", "Authorization: [redacted]\nnext"},
		{"cookie=download_token=SECRET", "cookie=[redacted]"},
		{"token SECRET", "token [redacted]"},
		{"error when reading request headers: i/o timeout", "error when reading request headers: i/o timeout"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFasthttpLoggerKeepsAddresses: the connection's addresses, which
// fasthttp passes as arguments, survive; the error's quoted bytes do not.
func TestFasthttpLoggerKeepsAddresses(t *testing.T) {
	var buf bytes.Buffer
	l := fasthttpLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	l.Printf("error when serving connection %q<->%q: %v", addr, addr, errors.New(`invalid request uri "/f?token=SECRET\x01"`))
	l.Printf("request %s: %q", []byte("GET /f?token=SECRET"), []byte(`"SECRET"`))
	out := buf.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, "83 69 67") || !strings.Contains(out, "127.0.0.1:8080") || !strings.Contains(out, "level=WARN") {
		t.Errorf("log line %q", out)
	}
}

// FuzzRedact: a secret that fasthttp quotes, or that follows "?" or a
// credential key, never survives, in any of the shapes fasthttp uses. The
// secret ends in "Z9", which nothing else in a shape contains.
func FuzzRedact(f *testing.F) {
	f.Add("token", "prefix")
	f.Add("a\"b\\c", "")
	f.Fuzz(func(t *testing.T, s, prefix string) {
		secret := s + "Z9"
		if strings.ContainsAny(prefix, `"?\`) || strings.Contains(prefix, "Z9") {
			return
		}
		shapes := []string{
			fmt.Sprintf("%s invalid header value %q: buffer size=1", prefix, secret),
			fmt.Sprintf("%s invalid request uri %q", prefix, "/f?token="+secret),
			fmt.Sprintf("%s contents: %q...%q", prefix, secret, secret),
		}
		if !strings.ContainsAny(secret, " \"\n") {
			shapes = append(shapes,
				prefix+" GET /f?"+secret+" HTTP/1.1",
				prefix+" Authorization: Bearer "+secret,
				prefix+" Cookie: download_token="+secret,
			)
		}
		for _, sh := range shapes {
			if out := redact(sh); strings.Contains(out, "Z9") {
				t.Fatalf("redact(%q) = %q keeps the secret", sh, out)
			}
		}
	})
}
