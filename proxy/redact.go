package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// fasthttpLogger is fasthttp's error log. fasthttp quotes the bytes that
// failed to parse even with SecureErrorLogMessage ("invalid header value
// \"Bearer SECRET\\x01\"", "invalid request uri \"/f?token=SECRET\\x01\""),
// and those bytes can be a download token: an Authorization value, a query
// string, a cookie. Every argument is redacted before it is formatted; the
// format strings are fasthttp's constants.
type fasthttpLogger struct{ log *slog.Logger }

// Printf logs one fasthttp message at level WARN.
func (l fasthttpLogger) Printf(format string, args ...any) {
	safe := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case net.Addr:
			safe[i] = a.String()
		case int, int64, uint64, uint, int32, uint32, float64, time.Duration:
			safe[i] = a
		case []byte: // fmt.Sprint would print the bytes as numbers
			safe[i] = redact(string(a))
		default:
			safe[i] = redact(fmt.Sprint(a))
		}
	}
	l.log.Warn(fmt.Sprintf(format, safe...))
}

// redacted replaces what redact removes.
const redacted = "[redacted]"

// secretKeys start a value redact removes to the end of the line: header
// names and parameters that carry credentials, matched case-insensitively.
var secretKeys = []string{"authorization", "cookie", "token", "bearer"}

// redact returns s without anything that may hold request bytes:
//
//   - every double-quoted fragment (fasthttp's %q of a header line, a value,
//     a request target or a buffer snippet), escapes honoured, an
//     unterminated one to the end;
//   - every query string ("?" to the next space or quote);
//   - after authorization, cookie, token or bearer and a separator
//     (":", "=", " "), the rest of the line.
//
// Request bytes that fasthttp prints without quotes are caught by the last
// two rules only, so they assume the worst.
func redact(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`"` + redacted + `"`)
			i = quoteEnd(s, i+1)
		case c == '?':
			b.WriteString("?" + redacted)
			i++
			for i < len(s) && s[i] != ' ' && s[i] != '"' && s[i] != '\n' {
				i++
			}
		default:
			if k := secretKeyAt(s, i); k > 0 {
				b.WriteString(s[i:k])
				b.WriteString(redacted)
				i = k
				for i < len(s) && s[i] != '\n' {
					i++
				}
				continue
			}
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// quoteEnd returns the index after the quote that closes a Go-quoted
// string whose content starts at i, or len(s).
func quoteEnd(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// secretKeyAt returns the index after a secret key and its separators when
// one starts at s[i], or 0.
func secretKeyAt(s string, i int) int {
	for _, k := range secretKeys {
		if len(s)-i <= len(k) || !strings.EqualFold(s[i:i+len(k)], k) {
			continue
		}
		j := i + len(k)
		sep := false
		for j < len(s) && (s[j] == ':' || s[j] == '=' || s[j] == ' ' || s[j] == '\t') {
			j++
			sep = true
		}
		if sep {
			return j
		}
	}
	return 0
}
