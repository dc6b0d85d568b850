package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The test destination mimics cmd/edgeproxy's: per-package Configs nested in
// one struct, with every kind of field Decode supports.

type testOrigin struct {
	Endpoint  string        `yaml:"endpoint"`
	AccessKey string        `yaml:"access_key"`
	Secure    bool          `yaml:"secure"`
	Timeout   time.Duration `yaml:"timeout"`
	Buckets   []string      `yaml:"buckets"`
}

type testTier struct {
	Name  string `yaml:"name"`
	Bytes int64  `yaml:"bytes"`
}

type testCache struct {
	MemoryBytes int64      `yaml:"memory_bytes"`
	DiskBytes   int64      `yaml:"disk_bytes"`
	ChunkSize   int        `yaml:"chunk_size"`
	Shards      uint8      `yaml:"shards"`
	Offset      int32      `yaml:"offset"`
	Ratio       float64    `yaml:"ratio"`
	Tiers       []testTier `yaml:"tiers"`
}

type testLimiter struct {
	Rate     float32         `yaml:"rate"`
	Burst    int64           `yaml:"burst"`
	Idle     time.Duration   `yaml:"idle"`
	Backoffs []time.Duration `yaml:"backoffs"`
}

type testRoute struct {
	Bucket string        `yaml:"bucket"`
	TTL    time.Duration `yaml:"ttl"`
}

type testCommon struct {
	Name string `yaml:"name"`
}

type testConfig struct {
	testCommon `yaml:",inline"`
	Listen     string               `yaml:"listen"`
	Origin     testOrigin           `yaml:"origin"`
	Cache      testCache            `yaml:"cache"`
	Limiter    *testLimiter         `yaml:"limiter"`
	Routes     map[string]testRoute `yaml:"routes"`
	Weights    map[string]float64   `yaml:"weights"`
	Level      slog.Level           `yaml:"log_level"`
	Trusted    []netip.Prefix       `yaml:"trusted"`
	Workers    *int                 `yaml:"workers"`
	Debug      bool                 // no tag: key "debug"
	Ignored    string               `yaml:"-"`
	hidden     string               //nolint:unused // unexported: not a key
}

// defaults returns a destination pre-filled the way the command does it.
func defaults() *testConfig {
	return &testConfig{
		Listen: ":8080",
		Origin: testOrigin{Endpoint: "127.0.0.1:9000", Timeout: 5 * time.Second, Buckets: []string{"default"}},
		Cache:  testCache{MemoryBytes: 1 << 30, ChunkSize: 1 << 20, Ratio: 0.5},
		Routes: map[string]testRoute{"keep": {Bucket: "old"}},
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, err string
	}{
		{"unknown top key", "listne: x\n", `config: unknown key "listne" (line 1)`},
		{"unknown nested key", "cache:\n  memroy_bytes: 1\n", `config: unknown key "cache.memroy_bytes" (line 2)`},
		{"unknown key at depth", "cache:\n  tiers:\n    - name: a\n      bytse: 1\n", `config: unknown key "cache.tiers[0].bytse" (line 4)`},
		{"unknown key in map value", "routes:\n  a:\n    buckt: x\n", `config: unknown key "routes.a.buckt" (line 3)`},
		{"unknown key through pointer", "limiter:\n  rat: 1\n", `config: unknown key "limiter.rat" (line 2)`},
		{"ignored field is no key", "Ignored: x\n", `config: unknown key "Ignored" (line 1)`},
		{"hidden field is no key", "hidden: x\n", `config: unknown key "hidden" (line 1)`},
		{"key names are case-sensitive", "Listen: x\n", `config: unknown key "Listen" (line 1)`},
		{"duplicate key", "listen: a\nlisten: b\n", `config: key "listen": duplicate key (first at line 1) (line 2)`},
		{"duplicate nested key", "cache:\n  shards: 1\n  shards: 2\n", `config: key "cache.shards": duplicate key (first at line 2) (line 3)`},
		{"string got mapping", "\n\nlisten:\n  a: b\n", `config: key "listen": expected a string, got a mapping (line 3)`},
		{"line of the key, not of an aliased value", "listen: &t 5x\n\norigin:\n  timeout: *t\n", `config: key "origin.timeout": invalid duration "5x" (line 4)`},
		{"line of the sequence item", "origin:\n  buckets:\n    - a\n    - [b]\n", `config: key "origin.buckets[1]": expected a string, got a sequence (line 4)`},
		{"text unmarshaler got mapping", "log_level: {a: 1}\n", `config: key "log_level": expected a string, got a mapping (line 1)`},
		{"string got sequence", "listen: [a]\n", `config: key "listen": expected a string, got a sequence (line 1)`},
		{"struct got scalar", "origin: s3\n", `config: key "origin": expected a mapping, got a scalar (line 1)`},
		{"pointer struct got sequence", "limiter: []\n", `config: key "limiter": expected a mapping, got a sequence (line 1)`},
		{"slice got scalar", "origin:\n  buckets: a,b\n", `config: key "origin.buckets": expected a sequence, got a scalar (line 2)`},
		{"map got sequence", "routes: [a]\n", `config: key "routes": expected a mapping, got a sequence (line 1)`},
		{"int got mapping", "cache: {shards: {}}\n", `config: key "cache.shards": expected an integer or size, got a mapping (line 1)`},
		{"duration got sequence", "origin: {timeout: [1]}\n", `config: key "origin.timeout": expected a duration, got a sequence (line 1)`},
		{"bool got sequence", "debug: []\n", `config: key "debug": expected true or false, got a sequence (line 1)`},
		{"float got mapping", "cache: {ratio: {}}\n", `config: key "cache.ratio": expected a number, got a mapping (line 1)`},
		{"top level sequence", "- a\n", `config: top level: expected a mapping, got a sequence (line 1)`},
		{"top level scalar", "hello\n", `config: top level: expected a mapping, got a scalar (line 1)`},
		{"bad duration", "origin:\n  timeout: 5x\n", `config: key "origin.timeout": invalid duration "5x" (line 2)`},
		{"bare number duration", "origin:\n  timeout: 30\n", `config: key "origin.timeout": invalid duration "30": a number needs a unit (ns, us, ms, s, m, h) (line 2)`},
		{"bad size", "cache:\n  disk_bytes: 2GB2\n", `config: key "cache.disk_bytes": invalid size "2GB2" (line 2)`},
		{"ambiguous size", "cache:\n  disk_bytes: 100k\n", `config: key "cache.disk_bytes": invalid size "100k": ambiguous unit "k", write KB (1000) or KiB (1024) (line 2)`},
		{"hex int", "cache: {chunk_size: 0x10}\n", `config: key "cache.chunk_size": invalid size "0x10" (line 1)`},
		{"int overflow int64", "cache: {memory_bytes: 9223372036854775808}\n", `config: key "cache.memory_bytes": "9223372036854775808" is out of range for int64 (line 1)`},
		{"int overflow int32", "cache: {offset: -3000000000}\n", `config: key "cache.offset": "-3000000000" is out of range for int32 (line 1)`},
		{"uint overflow", "cache: {shards: 256}\n", `config: key "cache.shards": "256" is out of range for uint8 (line 1)`},
		{"uint negative", "cache: {shards: -1}\n", `config: key "cache.shards": invalid size "-1": negative (line 1)`},
		{"bool yes", "debug: yes\n", `config: key "debug": invalid bool "yes" (want true or false) (line 1)`},
		{"float garbage", "cache: {ratio: half}\n", `config: key "cache.ratio": invalid number "half" (line 1)`},
		{"float nan", "cache: {ratio: .nan}\n", `config: key "cache.ratio": invalid number ".nan" (line 1)`},
		{"float inf", "cache: {ratio: inf}\n", `config: key "cache.ratio": invalid number "inf" (line 1)`},
		{"float32 overflow", "limiter: {rate: 1e39}\n", `config: key "limiter.rate": invalid number "1e39" (line 1)`},
		{"text unmarshaler", "log_level: loud\n", `config: key "log_level": invalid value "loud": slog: level string "loud": unknown name (line 1)`},
		{"bad element", "limiter:\n  backoffs: [1s, 2]\n", `config: key "limiter.backoffs[1]": invalid duration "2": a number needs a unit (ns, us, ms, s, m, h) (line 2)`},
		{"bad map value", "weights: {a: 1, b: x}\n", `config: key "weights.b": invalid number "x" (line 1)`},
		{"custom tag", "listen: !env PORT\n", `config: key "listen": unsupported tag "!env" (line 1)`},
		{"binary tag", "listen: !!binary aGk=\n", `config: key "listen": unsupported tag "!!binary" (line 1)`},
		{"non-scalar key", "? [a]\n: b\n", `config: top level: a key must be a scalar, not a sequence (line 1)`},
		{"two documents", "listen: a\n---\nlisten: b\n", `config: more than one YAML document (the second starts at line 2)`},
		{"syntax error", "listen: a\n  b: c\n", `config: yaml: line 2: mapping values are not allowed in this context`},
		{"unknown anchor", "listen: *nope\n", `config: yaml: unknown anchor 'nope' referenced`},
		{"merge of scalar", "origin:\n  <<: x\n", `config: key "origin": a merge (<<) needs a mapping or a sequence of mappings (line 2)`},
		{"unknown key beside a merge", "routes:\n  a: &b {bucket: x}\n  c:\n    <<: *b\n    buckt: y\n", `config: unknown key "routes.c.buckt" (line 5)`},
		{"unknown key brought by a merge", "weights: &w {a: 1}\nroutes:\n  c:\n    <<: *w\n", `config: unknown key "routes.c.a" (line 1)`},
		{"duplicate key in merged mapping", "routes:\n  c:\n    <<: {ttl: 1s, ttl: 2s}\n", `config: key "routes.c.ttl": duplicate key (first at line 3) (line 3)`},
		{"merge of a list of lists", "routes:\n  a:\n    <<: [[x]]\n", `config: key "routes.a": a merge (<<) needs a mapping or a sequence of mappings (line 3)`},
		{"self merge", "origin: &o\n  <<: *o\n", `config: key "origin": alias "o" refers to a node that contains it (line 2)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := defaults()
			err := Decode([]byte(tc.yaml), dst, nil)
			if err == nil {
				t.Fatalf("Decode succeeded, want %q; got %+v", tc.err, dst)
			}
			if err.Error() != tc.err {
				t.Fatalf("error\n got %q\nwant %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(c *testConfig) // applied to defaults()
	}{
		{"empty file keeps defaults", "", func(c *testConfig) {}},
		{"comments only", "# nothing here\n", func(c *testConfig) {}},
		{"explicit null document", "~\n", func(c *testConfig) {}},
		{"empty mapping", "{}\n", func(c *testConfig) {}},
		{"null values keep defaults", "listen:\norigin: ~\ncache:\n  memory_bytes: null\nlimiter:\n", func(c *testConfig) {}},
		{"strings", "listen: 127.0.0.1:9090\nname: '007'\norigin: {access_key: 0123}\n", func(c *testConfig) {
			c.Listen = "127.0.0.1:9090"
			c.Name = "007" // inline field
			c.Origin.AccessKey = "0123"
		}},
		{"empty string is a value", "listen: ''\n", func(c *testConfig) { c.Listen = "" }},
		{"bools", "debug: TRUE\norigin: {secure: true}\n", func(c *testConfig) {
			c.Debug = true
			c.Origin.Secure = true
		}},
		{"sizes and integers", "cache:\n  memory_bytes: 2GiB\n  disk_bytes: 1.5GB\n  chunk_size: 1048576\n  shards: 255\n  offset: -12\n", func(c *testConfig) {
			c.Cache.MemoryBytes = 2 << 30
			c.Cache.DiskBytes = 1_500_000_000
			c.Cache.ChunkSize = 1 << 20
			c.Cache.Shards = 255
			c.Cache.Offset = -12
		}},
		{"quoted size", "cache: {memory_bytes: \"512 MiB\"}\n", func(c *testConfig) { c.Cache.MemoryBytes = 512 << 20 }},
		{"floats", "cache: {ratio: 0.25}\nlimiter: {rate: 1e3}\n", func(c *testConfig) {
			c.Cache.Ratio = 0.25
			c.Limiter = &testLimiter{Rate: 1000}
		}},
		{"durations", "origin: {timeout: 1h30m}\nlimiter: {idle: 0, backoffs: [10ms, 1s]}\n", func(c *testConfig) {
			c.Origin.Timeout = 90 * time.Minute
			c.Limiter = &testLimiter{Backoffs: []time.Duration{10 * time.Millisecond, time.Second}}
		}},
		{"zero duration", "origin: {timeout: 0}\n", func(c *testConfig) { c.Origin.Timeout = 0 }},
		{"slice replaces default", "origin:\n  buckets:\n    - a\n    - b\n", func(c *testConfig) { c.Origin.Buckets = []string{"a", "b"} }},
		{"empty slice", "origin: {buckets: []}\n", func(c *testConfig) { c.Origin.Buckets = []string{} }},
		{"slice of structs", "cache:\n  tiers:\n    - {name: ram, bytes: 1KiB}\n    - name: disk\n", func(c *testConfig) {
			c.Cache.Tiers = []testTier{{"ram", 1024}, {"disk", 0}}
		}},
		{"map replaces default", "routes:\n  dl: {bucket: files, ttl: 1m}\n  img: {bucket: pics}\n", func(c *testConfig) {
			c.Routes = map[string]testRoute{"dl": {"files", time.Minute}, "img": {"pics", 0}}
		}},
		{"map of scalars", "weights: {a: 1, b: 2.5}\n", func(c *testConfig) { c.Weights = map[string]float64{"a": 1, "b": 2.5} }},
		{"text unmarshalers", "log_level: warn\ntrusted: [10.0.0.0/8, '::1/128']\n", func(c *testConfig) {
			c.Level = slog.LevelWarn
			c.Trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		}},
		{"pointer to scalar", "workers: 4\n", func(c *testConfig) { c.Workers = ptr(4) }},
		{"partial struct keeps sibling defaults", "origin:\n  access_key: k\n", func(c *testConfig) { c.Origin.AccessKey = "k" }},
		{"merge keys: explicit wins, earlier source wins", `
routes:
  a:
    <<: [{bucket: first, ttl: 1s}, {bucket: second, ttl: 2s}]
    ttl: 3s
`, func(c *testConfig) { c.Routes = map[string]testRoute{"a": {"first", 3 * time.Second}} }},
		{"alias to scalar", "listen: &l ':1'\norigin: {endpoint: *l}\n", func(c *testConfig) {
			c.Listen = ":1"
			c.Origin.Endpoint = ":1"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := defaults()
			if err := Decode([]byte(tc.yaml), got, nil); err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestDecodeAnchorsViaMap shows the usual way to share settings: anchors on
// the first entry of a map, merged into the others.
func TestDecodeAnchorsViaMap(t *testing.T) {
	in := `
routes:
  a: &base
    bucket: shared
    ttl: 1h
  b:
    <<: *base
    ttl: 1m
`
	got := defaults()
	if err := Decode([]byte(in), got, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]testRoute{"a": {"shared", time.Hour}, "b": {"shared", time.Minute}}
	if !reflect.DeepEqual(got.Routes, want) {
		t.Fatalf("routes = %+v, want %+v", got.Routes, want)
	}
}

// bombList is a recursive type, so that every level of the bomb decodes.
type bombList []bombList

func TestDecodeAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x:\n  a0: &a0 [[], [], [], [], [], [], [], [], [], []]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	var dst struct {
		X map[string]bombList `yaml:"x"`
	}
	start := time.Now()
	err := Decode([]byte(b.String()), &dst, nil)
	want := "config: document too large (more than 262144 values with aliases expanded)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestDecodeBadDestination(t *testing.T) {
	type withAny struct {
		X any `yaml:"x"`
	}
	type withChanInMap struct {
		M map[string]chan int `yaml:"m"`
	}
	type withIntKeys struct {
		M map[int]string `yaml:"m"`
	}
	type dupKeys struct {
		A string `yaml:"a"`
		B string `yaml:"a"`
	}
	type inlinePtr struct {
		P *testCommon `yaml:",inline"`
	}
	var s testConfig
	tests := []struct {
		dst any
		err string
	}{
		{nil, "config: destination must be a non-nil pointer to a struct, not <nil>"},
		{s, "config: destination must be a non-nil pointer to a struct, not config.testConfig"},
		{(*testConfig)(nil), "config: destination must be a non-nil pointer to a struct, not *config.testConfig"},
		{new(int), "config: destination must be a non-nil pointer to a struct, not *int"},
		{&withAny{}, `config: key "x": unsupported type interface {}`},
		{&withChanInMap{}, `config: key "m.*": unsupported type chan int`},
		{&withIntKeys{}, `config: key "m": unsupported type map[int]string (map keys must be strings)`},
		{&dupKeys{}, `config: type config.dupKeys: two fields use the key "a"`},
		{&inlinePtr{}, `config: field config.inlinePtr.P: inline needs a struct, not *config.testCommon`},
	}
	for _, tc := range tests {
		// The type is checked even when the document is empty.
		err := Decode(nil, tc.dst, nil)
		if err == nil || err.Error() != tc.err {
			t.Errorf("Decode(%T) error = %v, want %q", tc.dst, err, tc.err)
		}
	}
}

// TestDecodeRecursiveType checks that a self-referencing config type is
// decoded from the file and does not send the type walk into a loop.
func TestDecodeRecursiveType(t *testing.T) {
	type node struct {
		Name string `yaml:"name"`
		Next *node  `yaml:"next"`
	}
	type root struct {
		Head node `yaml:"head"`
	}
	var r root
	if err := Decode([]byte("head: {name: a, next: {name: b, next: {name: c}}}\n"), &r, []string{"EDGEPROXY_HEAD_NAME=z"}); err != nil {
		t.Fatal(err)
	}
	if r.Head.Name != "z" || r.Head.Next.Name != "b" || r.Head.Next.Next.Name != "c" || r.Head.Next.Next.Next != nil {
		t.Fatalf("got %+v", r)
	}
	err := Decode([]byte("head: &a {name: a, next: *a}\n"), &root{}, nil)
	want := `config: key "head.next.next": alias "a" refers to a node that contains it (line 1)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	err = Decode(nil, &r, []string{"EDGEPROXY_HEAD_NEXT_NAME=y"})
	want = `config: env EDGEPROXY_HEAD_NEXT_NAME: no setting has this name (see EnvName)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:1\ncache:\n  memory_bytes: 1MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := defaults()
	if err := Load(path, c, []string{"EDGEPROXY_CACHE_MEMORY_BYTES=2MiB"}); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:1" || c.Cache.MemoryBytes != 2<<20 {
		t.Fatalf("got listen %q memory %d", c.Listen, c.Cache.MemoryBytes)
	}
	err := Load(filepath.Join(dir, "missing.yaml"), c, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "config: open ") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestDecodeIntoExistingPointer checks that a non-nil pointer's target is
// filled in field by field, like any struct, and that named string map keys work.
func TestDecodeIntoExistingPointer(t *testing.T) {
	type bucket string
	var c struct {
		Limiter *testLimiter              `yaml:"limiter"`
		Owners  map[bucket]string         `yaml:"owners"`
		Sizes   map[string]*int64         `yaml:"sizes"`
		Nested  map[string][]testTier     `yaml:"nested"`
		Deep    map[string]map[string]int `yaml:"deep"`
	}
	keep := &testLimiter{Rate: 5, Burst: 10}
	c.Limiter = keep
	in := "limiter: {burst: 20}\nowners: {pics: alice}\nsizes: {a: 1KiB, b: ~}\nnested: {x: [{name: n}]}\ndeep: {a: {b: 2}}\n"
	if err := Decode([]byte(in), &c, nil); err != nil {
		t.Fatal(err)
	}
	if c.Limiter != keep || !reflect.DeepEqual(*keep, testLimiter{Rate: 5, Burst: 20}) {
		t.Fatalf("limiter = %p %+v, want the same pointer with burst 20", c.Limiter, c.Limiter)
	}
	if c.Owners["pics"] != "alice" || len(c.Owners) != 1 {
		t.Fatalf("owners = %v", c.Owners)
	}
	if len(c.Sizes) != 2 || *c.Sizes["a"] != 1024 || c.Sizes["b"] != nil {
		t.Fatalf("sizes = %v", c.Sizes)
	}
	if !reflect.DeepEqual(c.Nested, map[string][]testTier{"x": {{Name: "n"}}}) || c.Deep["a"]["b"] != 2 {
		t.Fatalf("nested = %v, deep = %v", c.Nested, c.Deep)
	}
	err := Decode([]byte("deep: {a: {b: x}}\n"), &c, nil)
	if want := `config: key "deep.a.b": invalid size "x" (line 1)`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
