package config

import (
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"origin.access_key", "EDGEPROXY_ORIGIN_ACCESS_KEY"},
		{"cache.memory_bytes", "EDGEPROXY_CACHE_MEMORY_BYTES"},
		{"listen", "EDGEPROXY_LISTEN"},
		{"Proxy.maxAge2", "EDGEPROXY_PROXY_MAXAGE2"},
		{"proxy.max-age", "EDGEPROXY_PROXY_MAX_AGE"},
		{"naïve", "EDGEPROXY_NA_VE"},
		{"", "EDGEPROXY_"},
	}
	for _, tc := range tests {
		if got := EnvName(tc.key); got != tc.want {
			t.Errorf("EnvName(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	const file = `
listen: 127.0.0.1:1
origin:
  access_key: from-file
  timeout: 10s
  buckets: [a, b]
cache:
  memory_bytes: 1GiB
`
	tests := []struct {
		name    string
		environ []string
		want    func(c *testConfig) // applied to defaults() after the file
	}{
		{"no variables", nil, func(c *testConfig) {}},
		{"other variables are ignored", []string{"PATH=/bin", "HOME=/root", "edgeproxy_listen=x", "EDGEPROXYLISTEN=x", "EDGEPROXY_LISTEN"}, func(c *testConfig) {}},
		{"config path is allowed", []string{"EDGEPROXY_CONFIG=/etc/edgeproxy.yaml"}, func(c *testConfig) {}},
		{"env wins over file", []string{"EDGEPROXY_ORIGIN_ACCESS_KEY=from-env", "EDGEPROXY_CACHE_MEMORY_BYTES=2GiB", "EDGEPROXY_ORIGIN_TIMEOUT=1m"}, func(c *testConfig) {
			c.Origin.AccessKey = "from-env"
			c.Cache.MemoryBytes = 2 << 30
			c.Origin.Timeout = time.Minute
		}},
		{"env sets what the file does not", []string{"EDGEPROXY_CACHE_DISK_BYTES=100", "EDGEPROXY_DEBUG=true", "EDGEPROXY_CACHE_RATIO=0.75", "EDGEPROXY_CACHE_SHARDS=8", "EDGEPROXY_LOG_LEVEL=debug"}, func(c *testConfig) {
			c.Cache.DiskBytes = 100
			c.Debug = true
			c.Cache.Ratio = 0.75
			c.Cache.Shards = 8
			c.Level = slog.LevelDebug
		}},
		{"inline field", []string{"EDGEPROXY_NAME=edge-1"}, func(c *testConfig) { c.Name = "edge-1" }},
		{"value with equals sign and spaces kept", []string{"EDGEPROXY_ORIGIN_ACCESS_KEY= a=b "}, func(c *testConfig) { c.Origin.AccessKey = " a=b " }},
		{"empty string", []string{"EDGEPROXY_LISTEN="}, func(c *testConfig) { c.Listen = "" }},
		{"first of duplicates wins", []string{"EDGEPROXY_LISTEN=first", "EDGEPROXY_LISTEN=second"}, func(c *testConfig) { c.Listen = "first" }},
		{"list", []string{"EDGEPROXY_ORIGIN_BUCKETS=x, y ,z"}, func(c *testConfig) { c.Origin.Buckets = []string{"x", "y", "z"} }},
		{"empty list", []string{"EDGEPROXY_ORIGIN_BUCKETS="}, func(c *testConfig) { c.Origin.Buckets = []string{} }},
		{"list of text unmarshalers", []string{"EDGEPROXY_TRUSTED=10.0.0.0/8"}, func(c *testConfig) { c.Trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }},
		{"nil pointer struct is allocated", []string{"EDGEPROXY_LIMITER_BURST=64KiB", "EDGEPROXY_LIMITER_BACKOFFS=1s,2s"}, func(c *testConfig) {
			c.Limiter = &testLimiter{Burst: 64 << 10, Backoffs: []time.Duration{time.Second, 2 * time.Second}}
		}},
		{"pointer to scalar", []string{"EDGEPROXY_WORKERS=3"}, func(c *testConfig) { c.Workers = ptr(3) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := defaults()
			if err := Decode([]byte(file), got, tc.environ); err != nil {
				t.Fatal(err)
			}
			want := defaults()
			if err := Decode([]byte(file), want, nil); err != nil {
				t.Fatal(err)
			}
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		err     string
	}{
		{"bad size", []string{"EDGEPROXY_CACHE_MEMORY_BYTES=lots"}, `config: env EDGEPROXY_CACHE_MEMORY_BYTES: invalid size "lots"`},
		{"bad duration", []string{"EDGEPROXY_ORIGIN_TIMEOUT=5x"}, `config: env EDGEPROXY_ORIGIN_TIMEOUT: invalid duration "5x"`},
		{"bare number duration", []string{"EDGEPROXY_ORIGIN_TIMEOUT=30"}, `config: env EDGEPROXY_ORIGIN_TIMEOUT: invalid duration "30": a number needs a unit (ns, us, ms, s, m, h)`},
		{"bad bool", []string{"EDGEPROXY_DEBUG=1"}, `config: env EDGEPROXY_DEBUG: invalid bool "1" (want true or false)`},
		{"empty int", []string{"EDGEPROXY_CACHE_CHUNK_SIZE="}, `config: env EDGEPROXY_CACHE_CHUNK_SIZE: invalid size "": empty`},
		{"overflow", []string{"EDGEPROXY_CACHE_SHARDS=1KiB"}, `config: env EDGEPROXY_CACHE_SHARDS: "1KiB" is out of range for uint8`},
		{"bad list item", []string{"EDGEPROXY_LIMITER_BACKOFFS=1s,,2s"}, `config: env EDGEPROXY_LIMITER_BACKOFFS: item 2: invalid duration ""`},
		{"unknown variable", []string{"PATH=/bin", "EDGEPROXY_CACHE_MEMROY_BYTES=1"}, `config: env EDGEPROXY_CACHE_MEMROY_BYTES: no setting has this name (see EnvName)`},
		{"unknown variable without value", []string{"EDGEPROXY_NOPE="}, `config: env EDGEPROXY_NOPE: no setting has this name (see EnvName)`},
		{"key path spelled with dots", []string{"EDGEPROXY_CACHE.MEMORY_BYTES=1"}, `config: env EDGEPROXY_CACHE.MEMORY_BYTES: no setting has this name (see EnvName)`},
		{"lower case after prefix", []string{"EDGEPROXY_listen=x"}, `config: env EDGEPROXY_listen: no setting has this name (see EnvName)`},
		{"group", []string{"EDGEPROXY_CACHE=x"}, `config: env EDGEPROXY_CACHE: key "cache" is a group of settings, which can't be set from the environment`},
		{"map", []string{"EDGEPROXY_ROUTES=x"}, `config: env EDGEPROXY_ROUTES: key "routes" is a map, which can't be set from the environment`},
		{"inside a map", []string{"EDGEPROXY_ROUTES_KEEP_BUCKET=x"}, `config: env EDGEPROXY_ROUTES_KEEP_BUCKET: no setting has this name (see EnvName)`},
		{"list of structs", []string{"EDGEPROXY_CACHE_TIERS=x"}, `config: env EDGEPROXY_CACHE_TIERS: key "cache.tiers" is a list of mappings, which can't be set from the environment`},
		{"first error wins", []string{"EDGEPROXY_LISTEN=ok", "EDGEPROXY_NOPE=1", "EDGEPROXY_DEBUG=maybe"}, `config: env EDGEPROXY_NOPE: no setting has this name (see EnvName)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode([]byte("listen: x\n"), defaults(), tc.environ)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error\n got %v\nwant %s", err, tc.err)
			}
		})
	}
}

func TestEnvAmbiguous(t *testing.T) {
	type inner struct {
		C string `yaml:"c"`
	}
	type clash struct {
		A  inner  `yaml:"a_b"`
		AB string `yaml:"a_b_c"`
	}
	// While nobody sets the variable, the clash does no harm.
	var c clash
	if err := Decode([]byte("a_b: {c: x}\na_b_c: y\n"), &c, nil); err != nil || c.A.C != "x" || c.AB != "y" {
		t.Fatalf("Decode: %v, got %+v", err, c)
	}
	err := Decode(nil, &c, []string{"EDGEPROXY_A_B_C=1"})
	want := `config: env EDGEPROXY_A_B_C: ambiguous, it names both "a_b.c" and "a_b_c"`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestEnvConfigFileIsASettingWhenDeclared checks the exception for
// EDGEPROXY_CONFIG gives way to a real key of that name.
func TestEnvConfigFileIsASettingWhenDeclared(t *testing.T) {
	var c struct {
		Config string `yaml:"config"`
	}
	if err := Decode(nil, &c, []string{EnvConfigFile + "=x"}); err != nil || c.Config != "x" {
		t.Fatalf("Decode: %v, Config = %q", err, c.Config)
	}
}
