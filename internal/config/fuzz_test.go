package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary documents and one arbitrary environment value to
// Decode and checks that it never panics and that every error is one line
// starting with "config: ", as the command prints it to the operator.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"",
		"listen: x\n",
		"cache:\n  memory_bytes: 2GiB\n  tiers:\n    - {name: a, bytes: 1KiB}\n",
		"origin: {timeout: 1h30m, buckets: [a, b], secure: true}\n",
		"routes:\n  a: &b {bucket: x, ttl: 1s}\n  c:\n    <<: *b\n",
		"limiter: {rate: 1.5, backoffs: [1s], idle: 0}\nworkers: 3\nlog_level: warn\n",
		"weights: {a: 1}\ntrusted: [10.0.0.0/8]\nname: n\ndebug: false\n",
		"a: &a [*a]\n",
		"listen: !!binary aGk=\n",
		"--- x\n--- y\n",
		"? [a]\n: b\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), "1s")
	}
	f.Add([]byte("listen: x\n"), uint8(3), "lots")
	vars, err := envTable(reflect.TypeFor[testConfig]())
	if err != nil {
		f.Fatal(err)
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	f.Fuzz(func(t *testing.T, data []byte, which uint8, val string) {
		environ := []string{names[int(which)%len(names)] + "=" + val}
		for _, env := range [][]string{nil, environ} {
			err := Decode(data, defaults(), env)
			if err == nil {
				continue
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("Decode(%q, %q): malformed error %q", data, env, msg)
			}
		}
	})
}
