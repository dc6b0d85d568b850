package deploy_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const composeDir = "deploy/compose"

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]yaml.Node      `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command         words             `yaml:"command"`
	Entrypoint      words             `yaml:"entrypoint"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Ports           []string          `yaml:"ports"`
	ReadOnly        bool              `yaml:"read_only"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
}

// words is a compose command or entrypoint: a list, or a string split on
// white space.
type words []string

func (w *words) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*w = l
	return nil
}

// mount is one entry of a service's volumes: a named volume or a bind
// mount of a path relative to the compose directory.
type mount struct{ source, target string }

func (s composeService) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			out = append(out, mount{parts[0], parts[1]})
		}
	}
	return out
}

// mountedAt returns the source mounted at target.
func (s composeService) mountedAt(target string) (string, bool) {
	for _, m := range s.mounts() {
		if path.Clean(m.target) == path.Clean(target) {
			return m.source, true
		}
	}
	return "", false
}

// flag returns the word after name in the command ("--address", ":9000").
func (w words) flag(name string) (string, bool) {
	i := slices.Index(w, name)
	if i < 0 || i+1 >= len(w) {
		return "", false
	}
	return w[i+1], true
}

// composeFleet is the parsed compose directory.
type composeFleet struct {
	file      composeFile
	df        dockerfile
	minio     []string // MinIO server services
	edges     []string // services running the Dockerfile's image
	sentinels []string
}

func loadCompose(t *testing.T) composeFleet {
	t.Helper()
	f := composeFleet{df: parseDockerfile(t)}
	decodeYAML(t, composeDir+"/compose.yaml", &f.file)
	for name, s := range f.file.Services {
		img, _ := imageRef(s.Image)
		switch {
		case img == f.df.image:
			f.edges = append(f.edges, name)
		case img == "minio" && len(s.Command) > 0 && s.Command[0] == "server":
			f.minio = append(f.minio, name)
		case slices.Contains(s.Entrypoint, "redis-sentinel") || strings.Contains(strings.Join(s.Entrypoint, " "), "redis-sentinel "):
			f.sentinels = append(f.sentinels, name)
		}
	}
	slices.Sort(f.edges)
	slices.Sort(f.minio)
	slices.Sort(f.sentinels)
	return f
}

// edgeSettings is an edge service's effective configuration: the file
// mounted at the image's config path and the service's environment.
func (f composeFleet) edgeSettings(t *testing.T, name string) (settings, []byte) {
	t.Helper()
	s := f.file.Services[name]
	src, ok := s.mountedAt(f.df.configPath)
	if !ok {
		t.Fatalf("compose %s: nothing mounted at the image's config path %s (Dockerfile ENV EDGEPROXY_CONFIG)", name, f.df.configPath)
	}
	file := readFile(t, filepath.Join(composeDir, src))
	return loadSettings(t, "compose "+name+" "+src, file, s.Environment), file
}

// minioPort is the port a MinIO service listens on (--address, else 9000).
func (f composeFleet) minioPort(t *testing.T, name string) int {
	t.Helper()
	addr, ok := f.file.Services[name].Command.flag("--address")
	if !ok {
		return 9000
	}
	_, p := splitHostPort(t, "compose "+name+" --address", addr)
	return p
}

func TestComposeMinIODistributed(t *testing.T) {
	f := loadCompose(t)
	if len(f.minio) != 4 {
		t.Fatalf("compose: MinIO server services %v, want 4", f.minio)
	}
	var first []string
	volumes := map[string]string{}
	for _, name := range f.minio {
		s := f.file.Services[name]
		var endpoints []string
		for _, w := range s.Command {
			if strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") {
				endpoints = append(endpoints, w)
			}
		}
		if first == nil {
			first = endpoints
		} else if !slices.Equal(endpoints, first) {
			t.Errorf("compose %s: endpoints %v differ from %s's %v (every node takes the same list)", name, endpoints, f.minio[0], first)
		}
		// This node's own endpoint: its drive is its volume.
		var own []string
		for _, e := range endpoints {
			u, err := url.Parse(e)
			if err != nil {
				t.Fatalf("compose %s: endpoint %q: %v", name, e, err)
			}
			if u.Hostname() != name {
				continue
			}
			own = append(own, e)
			if p, _ := strconv.Atoi(u.Port()); p != f.minioPort(t, name) {
				t.Errorf("compose %s: endpoint %s: port %s, but the node listens on %d", name, e, u.Port(), f.minioPort(t, name))
			}
			src, ok := s.mountedAt(u.Path)
			if !ok {
				t.Errorf("compose %s: no volume mounted at its drive %s", name, u.Path)
			} else if prev, dup := volumes[src]; dup {
				t.Errorf("compose %s and %s share the volume %s", name, prev, src)
			} else {
				volumes[src] = name
			}
		}
		if len(own) != 1 {
			t.Errorf("compose %s: %d endpoints on this node, want one (one drive per node)", name, len(own))
		}
	}
	if len(first) != len(f.minio) {
		t.Errorf("compose: %d endpoints for %d nodes", len(first), len(f.minio))
	}
}

// sentinelConf is what the edges and compose.yaml must agree with in
// sentinel.conf.
type sentinelConf struct {
	port             int
	master, host     string
	masterPort, quor int
}

func parseSentinelConf(t *testing.T) sentinelConf {
	t.Helper()
	c := sentinelConf{port: 26379}
	for _, line := range strings.Split(string(readFile(t, composeDir+"/sentinel.conf")), "\n") {
		w := strings.Fields(line)
		switch {
		case len(w) == 2 && w[0] == "port":
			c.port, _ = strconv.Atoi(w[1])
		case len(w) == 6 && w[0] == "sentinel" && w[1] == "monitor":
			c.master, c.host = w[2], w[3]
			c.masterPort, _ = strconv.Atoi(w[4])
			c.quor, _ = strconv.Atoi(w[5])
		}
	}
	if c.master == "" {
		t.Fatal("sentinel.conf: no \"sentinel monitor\" line")
	}
	return c
}

// redisPort is the port of a redis-server service (--port, else 6379).
func redisPort(s composeService) int {
	if p, ok := s.Command.flag("--port"); ok {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 6379
}

func TestComposeRedisSentinel(t *testing.T) {
	f := loadCompose(t)
	c := parseSentinelConf(t)
	if len(f.sentinels) != 3 {
		t.Errorf("compose: sentinel services %v, want 3", f.sentinels)
	}
	if c.quor <= len(f.sentinels)/2 || c.quor > len(f.sentinels) {
		t.Errorf("sentinel.conf: quorum %d of %d sentinels: want a majority that can be reached", c.quor, len(f.sentinels))
	}
	for _, name := range f.sentinels {
		src, ok := "", false
		for _, m := range f.file.Services[name].mounts() {
			if path.Base(m.source) == "sentinel.conf" && strings.Contains(strings.Join(f.file.Services[name].Entrypoint, " "), m.target) {
				src, ok = m.source, true
			}
		}
		if !ok || path.Clean(src) != "sentinel.conf" {
			t.Errorf("compose %s: does not start from ./sentinel.conf", name)
		}
	}
	master, ok := f.file.Services[c.host]
	if !ok || len(master.Command) == 0 || master.Command[0] != "redis-server" {
		t.Fatalf("sentinel.conf monitors %s, which is not a redis-server service", c.host)
	}
	if p := redisPort(master); p != c.masterPort {
		t.Errorf("sentinel.conf monitors %s:%d, the service listens on %d", c.host, c.masterPort, p)
	}
	var replicas []string
	for name, s := range f.file.Services {
		if i := slices.Index(s.Command, "--replicaof"); i >= 0 {
			if i+2 >= len(s.Command) || s.Command[i+1] != c.host || s.Command[i+2] != strconv.Itoa(c.masterPort) {
				t.Errorf("compose %s: replicates %v, not the monitored master %s %d", name, s.Command[i+1:], c.host, c.masterPort)
			}
			replicas = append(replicas, name)
		}
	}
	if len(replicas) != 1 {
		t.Errorf("compose: replicas %v, want one", replicas)
	}
}

func TestComposeEdges(t *testing.T) {
	f := loadCompose(t)
	c := parseSentinelConf(t)
	if len(f.edges) != 2 {
		t.Fatalf("compose: services running image %q: %v, want 2", f.df.image, f.edges)
	}
	var sentinelAddrs []string
	for _, s := range f.sentinels {
		sentinelAddrs = append(sentinelAddrs, s+":"+strconv.Itoa(c.port))
	}
	for _, name := range f.edges {
		t.Run(name, func(t *testing.T) {
			s := f.file.Services[name]
			if _, tag := imageRef(s.Image); tag != f.df.tag {
				t.Errorf("image %s: tag %q, the Dockerfile builds %s:%s", s.Image, tag, f.df.image, f.df.tag)
			}
			if s.Build == nil || filepath.Clean(filepath.Join(composeDir, s.Build.Context)) != "." || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("build: want context ../.. (the repository) and dockerfile Dockerfile, got %+v", s.Build)
			}
			if p, ok := s.Command.flag("-config"); ok && p != f.df.configPath {
				t.Errorf("-config %s, but the image's EDGEPROXY_CONFIG is %s", p, f.df.configPath)
			}
			if !s.ReadOnly {
				t.Error("read_only is not true")
			}
			cfg, file := f.edgeSettings(t, name)
			checkConfig(t, "compose "+name, file, s.Environment)

			listen := cfg.listenPort(t, "proxy.listen")
			if !slices.Contains(f.df.expose, listen) {
				t.Errorf("proxy.listen port %d is not EXPOSEd by the Dockerfile (%v)", listen, f.df.expose)
			}
			if len(s.Ports) == 0 {
				t.Error("no published port")
			}
			adminHost, admin := splitHostPort(t, "admin.listen", cfg.str(t, "admin.listen"))
			if adminHost != "" && adminHost != "0.0.0.0" && adminHost != "::" {
				t.Errorf("admin.listen %s: Prometheus cannot reach it from another container", cfg.str(t, "admin.listen"))
			}
			for _, p := range s.Ports {
				i := strings.LastIndex(p, ":")
				cp, err := strconv.Atoi(strings.TrimSuffix(p[i+1:], "/tcp"))
				if err != nil {
					t.Fatalf("ports %q: %v", p, err)
				}
				if cp == admin {
					t.Errorf("ports %q publishes the admin listener on the host", p)
				} else if cp != listen {
					t.Errorf("ports %q: container port %d, proxy.listen is %d", p, cp, listen)
				}
			}

			dir := cfg.str(t, "cache.disk_dir")
			if src, ok := s.mountedAt(dir); !ok || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				t.Errorf("cache.disk_dir %s: no named volume mounted there", dir)
			}
			if !f.df.ownedDirs[dir] {
				t.Errorf("cache.disk_dir %s: the Dockerfile does not create it owned by %s (a new volume there would not be writable)", dir, f.df.user)
			}

			if got := cfg.list(t, "redis.addrs"); !sameSet(got, sentinelAddrs) {
				t.Errorf("redis.addrs %v, the sentinels are %v", got, sentinelAddrs)
			}
			if got := cfg.str(t, "redis.master_name"); got != c.master {
				t.Errorf("redis.master_name %q, sentinel.conf monitors %q", got, c.master)
			}

			// origin.s3.endpoints replaces endpoint when set (the file
			// then blanks endpoint, or the edge refuses both).
			eps := cfg.list(t, "origin.s3.endpoints")
			if len(eps) == 0 {
				eps = []string{cfg.str(t, "origin.s3.endpoint")}
			} else if e := cfg.str(t, "origin.s3.endpoint"); e != "" {
				t.Errorf("origin.s3.endpoint %q set beside endpoints %v: the edge refuses both", e, eps)
			}
			for _, ep := range eps {
				host, port := splitHostPort(t, "origin.s3.endpoints", ep)
				if !slices.Contains(f.minio, host) {
					t.Errorf("origin.s3 endpoint host %s is not a MinIO node %v", host, f.minio)
					continue
				}
				if port != f.minioPort(t, host) {
					t.Errorf("origin.s3 endpoint port %d, %s listens on %d", port, host, f.minioPort(t, host))
				}
				env := f.file.Services[host].Environment
				if cfg.str(t, "origin.s3.access_key") != env["MINIO_ROOT_USER"] || cfg.str(t, "origin.s3.secret_key") != env["MINIO_ROOT_PASSWORD"] {
					t.Error("origin.s3 keys differ from the MinIO credentials")
				}
			}
			initCmd := strings.Join(f.file.Services["minio-init"].Entrypoint, " ")
			for _, k := range []string{"proxy.download_bucket", "origin.s3.ping_bucket"} {
				if b := cfg.str(t, k); b != "" && !strings.Contains(initCmd, "mc mb --ignore-existing fleet/"+b) {
					t.Errorf("%s %q: minio-init does not create it", k, b)
				}
			}

			drain := cfg.duration(t, "proxy.drain_timeout")
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period %q: %v", s.StopGracePeriod, err)
			}
			if grace < drain+time.Second || grace > drain+30*time.Second {
				t.Errorf("stop_grace_period %v: want proxy.drain_timeout (%v) plus a margin of 1s to 30s", grace, drain)
			}
		})
	}
}

// prometheusConfig is the part of prometheus.yml the test reads.
type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		Authorization *struct {
			Type        string `yaml:"type"`
			Credentials string `yaml:"credentials"`
		} `yaml:"authorization"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestComposePrometheusScrapesEdges(t *testing.T) {
	f := loadCompose(t)
	prom, ok := f.file.Services["prometheus"]
	if !ok {
		t.Fatal("compose: no prometheus service")
	}
	if src, ok := prom.mountedAt("/etc/prometheus/prometheus.yml"); !ok || path.Clean(src) != "prometheus.yml" {
		t.Errorf("prometheus: ./prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
	}
	var pc prometheusConfig
	decodeYAML(t, composeDir+"/prometheus.yml", &pc)
	var want []string
	keys := map[string]bool{}
	for _, name := range f.edges {
		cfg, _ := f.edgeSettings(t, name)
		_, port := splitHostPort(t, "admin.listen", cfg.str(t, "admin.listen"))
		want = append(want, name+":"+strconv.Itoa(port))
		keys[cfg.str(t, "admin.key")] = true
	}
	found := false
	for _, sc := range pc.ScrapeConfigs {
		var targets []string
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		if !sameSet(targets, want) {
			continue
		}
		found = true
		if p := sc.MetricsPath; p != "" && p != "/metrics" {
			t.Errorf("job %s: metrics_path %s, the admin API serves /metrics", sc.JobName, p)
		}
		a := sc.Authorization
		if a == nil || (a.Type != "" && a.Type != "Bearer") || !keys[a.Credentials] || len(keys) != 1 {
			t.Errorf("job %s: authorization must be Bearer with the edges' EDGEPROXY_ADMIN_KEY (the admin listener guards /metrics)", sc.JobName)
		}
	}
	if !found {
		t.Errorf("prometheus.yml: no scrape job whose targets are the edges' admin listeners %v", want)
	}
}

// grafanaDatasources and grafanaProviders are the provisioning files.
type grafanaDatasources struct {
	Datasources []struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
		UID  string `yaml:"uid"`
		URL  string `yaml:"url"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	Providers []struct {
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func TestComposeGrafanaProvisioned(t *testing.T) {
	f := loadCompose(t)
	g, ok := f.file.Services["grafana"]
	if !ok {
		t.Fatal("compose: no grafana service")
	}
	prov, ok := g.mountedAt("/etc/grafana/provisioning")
	if !ok {
		t.Fatal("grafana: nothing mounted at /etc/grafana/provisioning")
	}
	var ds grafanaDatasources
	decodeYAML(t, filepath.Join(composeDir, prov, "datasources/prometheus.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("grafana datasources: want one of type prometheus, got %+v", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	promPort := 9090 // Prometheus' default --web.listen-address
	if a, ok := f.file.Services["prometheus"].Command.flag("--web.listen-address"); ok {
		_, promPort = splitHostPort(t, "prometheus --web.listen-address", a)
	}
	if _, ok := f.file.Services[u.Hostname()]; !ok || u.Hostname() != "prometheus" || u.Port() != strconv.Itoa(promPort) {
		t.Errorf("grafana datasource url %s: want http://prometheus:%d", u, promPort)
	}

	var dp grafanaProviders
	decodeYAML(t, filepath.Join(composeDir, prov, "dashboards/edgeproxy.yaml"), &dp)
	var dashTarget string
	for _, m := range g.mounts() {
		if filepath.Clean(filepath.Join(composeDir, m.source)) == filepath.Clean("deploy/grafana/edgeproxy.json") {
			dashTarget = m.target
		}
	}
	if dashTarget == "" {
		t.Fatal("grafana: deploy/grafana/edgeproxy.json is not mounted")
	}
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || path.Clean(dp.Providers[0].Options.Path) != path.Dir(dashTarget) {
		t.Errorf("grafana dashboard provider: want one file provider of %s, got %+v", path.Dir(dashTarget), dp.Providers)
	}
	if dashTarget == prov || strings.HasPrefix(dashTarget, "/etc/grafana/provisioning/") {
		t.Errorf("grafana: the dashboard is mounted inside the provisioning directory (%s)", dashTarget)
	}
	checkDashboardDatasources(t, ds.Datasources[0].Type, ds.Datasources[0].UID)
}

// checkDashboardDatasources asserts that every datasource the dashboard
// names is the provisioned one: by uid, or through a datasource variable of
// its type.
func checkDashboardDatasources(t *testing.T, typ, uid string) {
	t.Helper()
	var dash struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw := readFile(t, "deploy/grafana/edgeproxy.json")
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" && v.Query == typ {
			vars["${"+v.Name+"}"], vars["$"+v.Name] = true, true
		}
	}
	var all any
	json.Unmarshal(raw, &all)
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if d, ok := v["datasource"].(map[string]any); ok {
				n++
				u, _ := d["uid"].(string)
				if d["type"] != typ || (u != uid && !vars[u]) {
					t.Errorf("dashboard datasource %v: not the provisioned %s (uid %q) nor a variable of that type", d, typ, uid)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(all)
	if n == 0 {
		t.Error("dashboard: no panel names a datasource")
	}
}

func TestComposeMountsExist(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.file.Services {
		for _, m := range s.mounts() {
			if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") {
				if _, err := os.Stat(filepath.Join(root, composeDir, m.source)); err != nil {
					t.Errorf("compose %s: bind mount %s: %v", name, m.source, err)
				}
			} else if _, ok := f.file.Volumes[m.source]; !ok {
				t.Errorf("compose %s: volume %s is not declared under volumes", name, m.source)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b)) && len(a) == len(b)
}

// Instant invalidation in the compose fleet: every MinIO node has the same
// Redis notification target, pushing to the monitored master the list the
// edges pop (invalidation.events_key) in the format they parse; minio-init
// sends the download bucket's put and delete events to it.
func TestComposeInvalidation(t *testing.T) {
	f := loadCompose(t)
	c := parseSentinelConf(t)
	const prefix = "MINIO_NOTIFY_REDIS_ENABLE_"
	var id string
	for _, name := range f.minio {
		env := f.file.Services[name].Environment
		var ids []string
		for k, v := range env {
			if strings.HasPrefix(k, prefix) && v == "on" {
				ids = append(ids, strings.TrimPrefix(k, prefix))
			}
		}
		if len(ids) != 1 {
			t.Fatalf("compose %s: Redis notification targets %v, want one", name, ids)
		}
		if id == "" {
			id = ids[0]
		} else if ids[0] != id {
			t.Errorf("compose %s: target %s, %s has %s", name, ids[0], f.minio[0], id)
		}
		if got, want := env["MINIO_NOTIFY_REDIS_ADDRESS_"+id], c.host+":"+strconv.Itoa(c.masterPort); got != want {
			t.Errorf("compose %s: target address %q, the monitored master is %s", name, got, want)
		}
		if got := env["MINIO_NOTIFY_REDIS_FORMAT_"+id]; got != "access" {
			t.Errorf("compose %s: target format %q, the edges read \"access\" (a list of events)", name, got)
		}
		for _, edge := range f.edges {
			cfg, _ := f.edgeSettings(t, edge)
			key := cfg.str(t, "invalidation.events_key")
			if key == "" {
				t.Errorf("compose %s: invalidation.events_key is empty (instant invalidation off)", edge)
			}
			if got := env["MINIO_NOTIFY_REDIS_KEY_"+id]; got != key {
				t.Errorf("compose %s: target key %q, %s pops invalidation.events_key %q", name, got, edge, key)
			}
		}
	}
	initCmd := strings.Join(f.file.Services["minio-init"].Entrypoint, " ")
	cfg, _ := f.edgeSettings(t, f.edges[0])
	add := "mc event add fleet/" + cfg.str(t, "proxy.download_bucket") + " arn:minio:sqs::" + id + ":redis --event "
	i := strings.Index(initCmd, add)
	if i < 0 {
		t.Fatalf("minio-init does not run %q...", add)
	}
	events := strings.Split(strings.Trim(strings.Fields(initCmd[i+len(add):])[0], `)"'`), ",")
	for _, ev := range []string{"put", "delete"} {
		if !slices.Contains(events, ev) {
			t.Errorf("minio-init: events %v lack %s", events, ev)
		}
	}
}
