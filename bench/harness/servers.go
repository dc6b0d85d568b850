package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// server is one cache under test, reading MinIO through its own relay.
type server struct {
	Name   string
	Addr   string // 127.0.0.1:port
	prefix string // URL path before the object key
	relay  *testenv.Relay
	proc   *proc
	notes  []string // how it was configured, for the report
}

// URL is the address of key on this server.
func (s *server) URL(key string) string { return "http://" + s.Addr + s.prefix + key }

func (s *server) stop() {
	s.proc.stop()
	s.relay.Close()
}

// serverNames is the order servers appear in the table.
var serverNames = []string{"edgeproxy", "nginx", "varnish"}

// newServer readies a server not yet started: its scratch space dir, its
// relay to org and a free port.
func newServer(name, dir string, org *origin) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r, err := testenv.StartRelay(org.Endpoint)
	if err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		r.Close()
		return nil, err
	}
	return &server{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port), relay: r}, nil
}

// startServer starts the named server with its scratch space under dir.
func startServer(ctx context.Context, name, root, dir string, org *origin, extraEnv []string) (*server, error) {
	s, err := newServer(name, dir, org)
	if err != nil {
		return nil, err
	}
	switch name {
	case "edgeproxy":
		err = s.startEdgeproxy(ctx, root, dir, org, extraEnv)
	case "nginx":
		err = s.startNginx(ctx, dir)
	case "varnish":
		err = s.startVarnish(ctx, dir)
	case varnishFile:
		err = s.startVarnishFile(ctx, dir)
	default:
		err = fmt.Errorf("harness: unknown server %q", name)
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startEdgeproxy builds ./cmd/edgeproxy and runs it on the repository's
// config.yaml with EDGEPROXY_* overrides.
func (s *server) startEdgeproxy(ctx context.Context, root, dir string, org *origin, extraEnv []string) error {
	bin, err := buildEdgeproxy(ctx, root, filepath.Join(dir, "edgeproxy"))
	if err != nil {
		return err
	}
	conf := filepath.Join(root, "config.yaml")
	env := []string{
		"EDGEPROXY_PROXY_LISTEN=" + s.Addr,
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=" + benchBucket,
		"EDGEPROXY_PROXY_DOWNLOAD_AUTH=none",
		"EDGEPROXY_PROXY_ACCESS_LOG=false",
		"EDGEPROXY_ORIGIN_KIND=s3",
		"EDGEPROXY_ORIGIN_S3_ENDPOINT=" + s.relay.Addr,
		"EDGEPROXY_ORIGIN_S3_ACCESS_KEY=" + org.AccessKey,
		"EDGEPROXY_ORIGIN_S3_SECRET_KEY=" + org.SecretKey,
		"EDGEPROXY_LOG_LEVEL=warn",
	}
	cacheEnv, err := edgeproxyCacheEnv(conf, filepath.Join(dir, "cache"))
	if err != nil {
		return err
	}
	check := func(env []string) error {
		_, err := runCmd(ctx, time.Minute, root, env, bin, "-config", conf, "-check")
		return err
	}
	full := append(append(append([]string{}, env...), cacheEnv...), extraEnv...)
	if err := check(full); err != nil {
		if len(cacheEnv) == 0 {
			return err
		}
		logf("edgeproxy rejects the cache settings, running without them: %v", err)
		full = append(append([]string{}, env...), extraEnv...)
		if err := check(full); err != nil {
			return err
		}
		cacheEnv = nil
	}
	if len(cacheEnv) == 0 {
		s.notes = append(s.notes, "no cache section in config.yaml: proxies straight to origin")
	} else {
		s.notes = append(s.notes, "cache: "+strings.Join(trimPrefixes(cacheEnv, "EDGEPROXY_"), " "))
	}
	for _, kv := range extraEnv {
		s.notes = append(s.notes, "extra: "+kv)
	}
	s.prefix = "/download/"
	s.proc, err = startProc("edgeproxy", filepath.Join(dir, "edgeproxy.log"), full, bin, "-config", conf)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	return s.proc.WaitReady(ctx, 30*time.Second, func() bool {
		resp, err := hc.Get("http://" + s.Addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// edgeproxyBuilt is the binary the first buildEdgeproxy of this run made;
// later instances (the access-layer variants) run the same one.
var edgeproxyBuilt string

// buildEdgeproxy builds ./cmd/edgeproxy to bin, once per run.
func buildEdgeproxy(ctx context.Context, root, bin string) (string, error) {
	if edgeproxyBuilt != "" {
		return edgeproxyBuilt, nil
	}
	logf("building ./cmd/edgeproxy")
	if _, err := runCmd(ctx, 5*time.Minute, root, nil, "go", "build", "-o", bin, "./cmd/edgeproxy"); err != nil {
		return "", err
	}
	edgeproxyBuilt = bin
	return bin, nil
}

// edgeproxyCacheEnv returns the EDGEPROXY_CACHE_* overrides that size the
// cache like the other two (1 GiB of memory, as Varnish; a disk tier in the
// scratch dir, as nginx), for the keys config.yaml's cache section has.
// No cache section means no overrides: the proxy then reads through.
func edgeproxyCacheEnv(confPath, diskDir string) ([]string, error) {
	b, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("harness: read %s: %w", confPath, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("harness: parse %s: %w", confPath, err)
	}
	section, _ := doc["cache"].(map[string]any)
	want := map[string]string{
		"enabled":      "true",
		"memory_bytes": "1GiB",
		"disk_dir":     diskDir,
		"disk_bytes":   "8GiB",
	}
	var env []string
	for k, v := range want {
		if _, ok := section[k]; ok {
			env = append(env, "EDGEPROXY_CACHE_"+strings.ToUpper(k)+"="+v)
		}
	}
	sort.Strings(env)
	return env, nil
}

func trimPrefixes(ss []string, prefix string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimPrefix(s, prefix)
	}
	return out
}

// nginxConf is a tuned nginx edge cache: 1 MiB slices cached separately
// (so a range of a huge object fetches only the slices it needs), a cache
// lock (coalescing per slice), sendfile, keep-alive to the origin.
var nginxConf = template.Must(template.New("nginx").Parse(`# generated by bench/harness
{{if .Root}}user root;
{{end}}worker_processes 2;
pid nginx.pid;
error_log {{.Dir}}/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy_temp;
    fastcgi_temp_path {{.Dir}}/fastcgi_temp;
    uwsgi_temp_path {{.Dir}}/uwsgi_temp;
    scgi_temp_path {{.Dir}}/scgi_temp;
    proxy_cache_path {{.Dir}}/cache levels=1:2 keys_zone=edge:64m max_size={{.MaxSize}} inactive=1h use_temp_path=off;

    upstream origin {
        server {{.Origin}};
        keepalive 64;
    }
    server {
        listen {{.Listen}} backlog=4096;
        location / {
            slice 1m;
            proxy_cache edge;
            proxy_cache_key $uri$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://origin;
        }
    }
}
`))

func (s *server) startNginx(ctx context.Context, dir string) error {
	return s.startNginxSized(ctx, dir, "16g")
}

// startNginxSized starts nginx with a cache of maxSize (nginx's syntax).
func (s *server) startNginxSized(ctx context.Context, dir, maxSize string) error {
	bin, err := toolPath("nginx")
	if err != nil {
		return err
	}
	var b strings.Builder
	err = nginxConf.Execute(&b, map[string]any{
		"Root": os.Geteuid() == 0, "Dir": dir, "Origin": s.relay.Addr, "Listen": s.Addr, "MaxSize": maxSize,
	})
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if _, err := runCmd(ctx, time.Minute, dir, nil, bin, "-t", "-q", "-p", dir+"/", "-e", dir+"/error.log", "-c", conf); err != nil {
		return err
	}
	s.prefix = "/" + benchBucket + "/"
	s.notes = append(s.notes, "2 workers, proxy_cache on disk (page cache), slice 1m, cache lock, sendfile")
	s.proc, err = startProc("nginx", filepath.Join(dir, "stderr.log"), nil, bin,
		"-p", dir+"/", "-e", dir+"/error.log", "-c", conf, "-g", "daemon off;")
	if err != nil {
		return err
	}
	return s.proc.WaitReady(ctx, 30*time.Second, func() bool { return canDial(s.Addr) })
}

// varnishVCL caches every GET for an hour and streams misses. Varnish drops
// Range from the backend request of a cacheable miss, so it fetches whole
// objects and serves ranges from the cached copy.
var varnishVCL = template.Must(template.New("vcl").Parse(`vcl 4.1;
# generated by bench/harness
backend origin {
    .host = "127.0.0.1";
    .port = "{{.OriginPort}}";
    .connect_timeout = 3s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 60s;
}
sub vcl_recv {
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}
sub vcl_backend_response {
    set beresp.ttl = 1h;
    set beresp.grace = 0s;
    set beresp.do_stream = true;
    unset beresp.http.Set-Cookie;
    unset beresp.http.Vary;
    return (deliver);
}
`))

func (s *server) startVarnish(ctx context.Context, dir string) error {
	return s.startVarnishStorage(ctx, dir, []string{"-s", "malloc,1G"},
		"-s malloc,1G, 2 thread pools, do_stream, whole-object fetch, ranges from cache")
}

// varnishFile names the Varnish of the disk-tier rows: file storage instead
// of malloc. Its samples are filed under "varnish" (see runDisk).
const varnishFile = "varnish-file"

// varnishFileSize is the file storage of varnishFile: room for the disk
// scenarios' 352 MiB (the 256 MiB object and 96 x 1 MiB) with slack.
const varnishFileSize = "1G"

// startVarnishFile starts Varnish with -s file, the storage Varnish offers
// for caches larger than memory, and a small malloc Transient store (short-
// lived and uncacheable objects), so that only the file holds the objects.
func (s *server) startVarnishFile(ctx context.Context, dir string) error {
	return s.startVarnishStorage(ctx, dir,
		[]string{"-s", "file," + filepath.Join(dir, "varnish.bin") + "," + varnishFileSize, "-s", "Transient=malloc,64m"},
		"-s file,"+varnishFileSize+" (Varnish maps the file into memory and serves hits from that mapping: the kernel's page cache decides what stays in RAM, "+
			"so while the file fits in memory, as here, its hits cost what malloc hits cost and touch no disk, like nginx's and edgeproxy's page-cache hits), "+
			"-s Transient=malloc,64m, 2 thread pools, do_stream, whole-object fetch, ranges from cache")
}

// startVarnishStorage starts Varnish with the storage arguments given.
func (s *server) startVarnishStorage(ctx context.Context, dir string, storage []string, note string) error {
	bin, err := toolPath("varnishd")
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := varnishVCL.Execute(&b, map[string]any{"OriginPort": s.relay.Port()}); err != nil {
		return err
	}
	vcl := filepath.Join(dir, "bench.vcl")
	if err := os.WriteFile(vcl, []byte(b.String()), 0o644); err != nil {
		return err
	}
	adminPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	s.prefix = "/" + benchBucket + "/"
	s.notes = append(s.notes, note)
	args := append([]string{"-F", "-a", s.Addr, "-T", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"-n", filepath.Join(dir, "work"), "-f", vcl}, storage...)
	s.proc, err = startProc("varnish", filepath.Join(dir, "varnishd.log"), nil, bin, append(args, "-p", "thread_pools=2")...)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	// The listen socket opens before the cache child runs; wait for an
	// answer (any status: the bucket listing is not public).
	return s.proc.WaitReady(ctx, 60*time.Second, func() bool {
		resp, err := hc.Head(s.URL(""))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}
