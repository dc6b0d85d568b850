package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/clientip"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestClientIPConfig: the deprecated limiter.trusted_proxies maps onto
// client_ip with one warning, and may not contradict it.
func TestClientIPConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		old, new   []string
		want       []string
		wantErr    string
		wantWarned bool
	}{
		{"neither", nil, nil, nil, "", false},
		{"new only", nil, []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}, "", false},
		{"old only", []string{"10.0.0.0/8"}, nil, []string{"10.0.0.0/8"}, "", true},
		{"both, same", []string{"192.0.2.1", "10.0.0.0/8"}, []string{"10.0.0.0/8", "192.0.2.1/32"}, []string{"10.0.0.0/8", "192.0.2.1/32"}, "", true},
		{"both, differ", []string{"10.0.0.0/8"}, []string{"10.0.0.0/16"}, nil, `"limiter.trusted_proxies"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			cfg := defaultConfig()
			cfg.Limiter.TrustedProxies, cfg.ClientIP.TrustedProxies = tc.old, tc.new
			got, err := clientIPConfig(cfg, log)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
			} else if err != nil || strings.Join(got.TrustedProxies, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, %v; want %v", got.TrustedProxies, err, tc.want)
			}
			warned := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "limiter.trusted_proxies is deprecated")
			if warned != tc.wantWarned || strings.Count(buf.String(), "\n") > 1 {
				t.Errorf("log %q, want a one-line deprecation warning: %v", buf.String(), tc.wantWarned)
			}
		})
	}
	if _, err := clientip.New(clientip.Config{Header: "nope"}); err == nil {
		t.Fatal("clientip accepted header nope")
	}
}

// TestTrustedProxiesWithoutLimits (issue 9, defect 3) runs the binary with
// trusted proxies and no rate limit: one client behind the balancer (the
// loopback, trusted) who sends bad tokens is throttled, and another client
// behind the same balancer is not. Before, trusted_proxies was read only
// by a limiter that existed only when a limit was set, so everyone behind
// the balancer was one client and was locked out together.
func TestTrustedProxiesWithoutLimits(t *testing.T) {
	r := testenv.NewRedis(t)
	rdb := r.Client(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b", "f.bin"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "clientip-e2e-token-0123456789"
	for _, tc := range []struct{ name, env, warning string }{
		{"client_ip", "EDGEPROXY_CLIENT_IP_TRUSTED_PROXIES=127.0.0.1", ""},
		{"deprecated limiter key", "EDGEPROXY_LIMITER_TRUSTED_PROXIES=127.0.0.0/8", "limiter.trusted_proxies is deprecated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb.FlushDB(context.Background()) // the throttle's counters of the previous run
			if err := rdb.Set(context.Background(), "download:token:"+token, "file_id=f.bin", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			p := start(t, []string{"-config", "../../config.yaml"}, tokenDirEnv(root, r.Addr, tc.env))
			get := func(tok, xff string) int {
				req, _ := http.NewRequest("GET", "http://"+p.addr+"/download/f.bin", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("X-Forwarded-For", xff)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			throttled := false
			for i := 0; i < 25 && !throttled; i++ {
				throttled = get("bad-token-of-the-attacker", "203.0.113.66") == 429
			}
			if !throttled {
				t.Fatal("25 bad tokens were never throttled")
			}
			if got := get(token, "198.51.100.7"); got != 200 {
				t.Errorf("another client behind the balancer: status %d, want 200", got)
			}
			if got := get(token, "203.0.113.66"); got != 429 {
				t.Errorf("the guesser with a good token: status %d, want 429", got)
			}
			if tc.warning != "" && strings.Count(p.stderr.String(), tc.warning) != 1 {
				t.Errorf("want one %q line in the log:\n%s", tc.warning, p.stderr.String())
			}
		})
	}
}

// TestClientIPConfigErrorsExitTwo: client_ip mistakes stop the binary with
// exit code 2 and one line naming the key.
func TestClientIPConfigErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"keys differ", "limiter:\n  trusted_proxies: [10.0.0.0/8]\nclient_ip:\n  trusted_proxies: [10.0.0.0/16]\n", `"limiter.trusted_proxies"`},
		{"bad header", "client_ip:\n  header: true-client-ip\n", "config header"},
		{"bad proxy", "client_ip:\n  trusted_proxies: [nope]\n", "trusted_proxies[0]"},
		{"proxy protocol, no proxies", "client_ip:\n  header: proxy-protocol\n", "needs trusted_proxies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			yaml := "proxy:\n  download_bucket: b\norigin:\n  kind: dir\n  dir:\n    root: " + dir + "\n" + tc.yaml
			if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			stderr := runUsageError(t, binary(t), nil, "-check", "-config", path)
			// The deprecation warning (a JSON log line) may precede it.
			lines := strings.Split(stderr, "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "edgeproxy: config: ") || !strings.Contains(last, tc.want) {
				t.Errorf("last stderr line %q does not name %q", last, tc.want)
			}
		})
	}
}
