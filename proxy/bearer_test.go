package proxy

import (
	"bytes"
	"testing"
)

func TestBearerToken(t *testing.T) {
	lines := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, v := range s {
			out[i] = []byte(v)
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		lines [][]byte
		want  string // "" with err nil: no Bearer credential
		err   error
	}{
		// Refusals first.
		{"two lines", lines("Bearer a", "Bearer b"), "", errDuplicateAuthorization},
		{"two lines, same token", lines("Bearer a", "Bearer a"), "", errDuplicateAuthorization},
		{"two lines, one empty", lines("Bearer a", ""), "", errDuplicateAuthorization},
		{"two lines, other scheme first", lines("Basic Zm9vOmJhcg==", "Bearer a"), "", errDuplicateAuthorization},
		{"auth-params", lines(`Bearer realm="x"`), "", errBadAuthorization},
		{"two tokens", lines("Bearer a b"), "", errBadAuthorization},
		{"comma list", lines("Bearer a, Bearer b"), "", errBadAuthorization},
		{"tab separator", lines("Bearer\ta"), "", errBadAuthorization},
		{"no separator", lines("Bearer=abc"), "", errBadAuthorization},
		{"control byte", lines("Bearer abc\x01"), "", errBadAuthorization},
		{"DEL", lines("Bearer abc\x7f"), "", errBadAuthorization},
		{"padding inside", lines("Bearer ab=c"), "", errBadAuthorization},
		{"only padding", lines("Bearer =="), "", errBadAuthorization},
		{"non-ASCII", lines("Bearer t\xc3\xa9"), "", errBadAuthorization},
		{"colon", lines("Bearer a:b"), "", errBadAuthorization},
		// No Bearer credential: the query and the cookie are consulted.
		{"absent", nil, "", nil},
		{"empty line", lines(""), "", nil},
		{"scheme alone", lines("Bearer"), "", nil},
		{"scheme and spaces", lines("Bearer   "), "", nil},
		{"basic", lines("Basic Zm9vOmJhcg=="), "", nil},
		{"longer scheme", lines("Bearerx abc"), "", nil},
		{"prefix of the scheme", lines("Bear abc"), "", nil},
		// Good.
		{"canonical", lines("Bearer abc123"), "abc123", nil},
		{"lowercase scheme", lines("bearer x"), "x", nil},
		{"uppercase scheme", lines("BEARER x"), "x", nil},
		{"mixed case scheme", lines("bEaReR x"), "x", nil},
		{"several spaces", lines("Bearer   x"), "x", nil},
		{"surrounding OWS", lines(" \tBearer x\t "), "x", nil},
		{"base64url", lines("Bearer AZaz09-._~+/"), "AZaz09-._~+/", nil},
		{"padding", lines("Bearer abc=="), "abc==", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bearerToken(tt.lines)
			if err != tt.err || string(got) != tt.want {
				t.Fatalf("bearerToken(%q) = %q, %v; want %q, %v", tt.lines, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestBearerTokenNoAlloc(t *testing.T) {
	in := [][]byte{[]byte("bearer  AZaz09-._~+/==")}
	if n := testing.AllocsPerRun(100, func() { bearerToken(in) }); n != 0 {
		t.Fatalf("bearerToken allocates %v times", n)
	}
}

// FuzzBearerToken: whatever the input, a returned token is a non-empty
// token68 taken from the only line, after a scheme that equals "bearer"
// ignoring case; several lines are always refused.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x==", "Basic a", "Bearer", "Bearer a b", "Bearer\tx", ""} {
		f.Add(s, false)
	}
	f.Add("Bearer a", true)
	f.Fuzz(func(t *testing.T, line string, twice bool) {
		in := [][]byte{[]byte(line)}
		if twice {
			in = append(in, []byte(line))
		}
		tok, err := bearerToken(in)
		if twice {
			if err != errDuplicateAuthorization || tok != nil {
				t.Fatalf("two lines: %q, %v", tok, err)
			}
			return
		}
		if err != nil && err != errBadAuthorization {
			t.Fatalf("unexpected error %v", err)
		}
		if tok == nil {
			return
		}
		if err != nil || !isToken68(tok) {
			t.Fatalf("%q: token %q, err %v", line, tok, err)
		}
		v := bytes.Trim([]byte(line), " \t")
		if !bytes.HasSuffix(v, tok) || !bytes.EqualFold(bytes.TrimRight(v[:len(v)-len(tok)], " "), []byte("bearer")) {
			t.Fatalf("%q: token %q is not what follows the Bearer scheme", line, tok)
		}
	})
}
