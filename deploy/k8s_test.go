package deploy_test

import (
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
)

const k8sDir = "deploy/k8s"

// k8sObject is the part of a manifest every kind shares; spec and data are
// decoded by kind.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	file       string
}

type deploymentSpec struct {
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
		RunAsGroup   *int  `yaml:"runAsGroup"`
	} `yaml:"securityContext"`
	Affinity struct {
		PodAntiAffinity struct {
			Required []struct {
				TopologyKey   string        `yaml:"topologyKey"`
				LabelSelector labelSelector `yaml:"labelSelector"`
			} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas *int `yaml:"minReplicas"`
	MaxReplicas int  `yaml:"maxReplicas"`
	Metrics     []struct {
		Resource *struct {
			Name string `yaml:"name"`
		} `yaml:"resource"`
	} `yaml:"metrics"`
}

type pdbSpec struct {
	Selector       labelSelector `yaml:"selector"`
	MaxUnavailable *int          `yaml:"maxUnavailable"`
	MinAvailable   *int          `yaml:"minAvailable"`
}

// k8sManifests is the parsed k8s directory.
type k8sManifests struct {
	objects []k8sObject
	df      dockerfile
}

func loadK8s(t *testing.T) k8sManifests {
	t.Helper()
	m := k8sManifests{df: parseDockerfile(t)}
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	decodeYAML(t, k8sDir+"/kustomization.yaml", &kust)
	files, err := filepath.Glob(filepath.Join(root, k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			names = append(names, b)
		}
	}
	if !sameSet(names, kust.Resources) {
		t.Errorf("kustomization.yaml resources %v, the directory holds %v", kust.Resources, names)
	}
	for _, name := range names {
		for _, doc := range decodeDocs(t, k8sDir+"/"+name) {
			var o k8sObject
			if err := doc.Decode(&o); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			o.file = name
			m.objects = append(m.objects, o)
		}
	}
	return m
}

// one returns the only object of a kind, decoding its spec into spec.
func (m k8sManifests) one(t *testing.T, kind string, spec any) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range m.objects {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("k8s: %d objects of kind %s, want 1", len(found), kind)
	}
	if spec != nil {
		if err := found[0].Spec.Decode(spec); err != nil {
			t.Fatalf("%s %s: %v", kind, found[0].Metadata.Name, err)
		}
	}
	return found[0]
}

func (m k8sManifests) named(t *testing.T, kind, name string) k8sObject {
	t.Helper()
	for _, o := range m.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("k8s: no %s named %q", kind, name)
	return k8sObject{}
}

// edge is the Deployment's edgeproxy container with what it refers to.
type edge struct {
	name   string // the Deployment
	pod    podSpec
	labels map[string]string
	c      container
	cfg    settings
	file   []byte            // the ConfigMap's config.yaml
	env    map[string]string // EDGEPROXY_* with the Secret's values
}

func (m k8sManifests) edge(t *testing.T) edge {
	t.Helper()
	var spec deploymentSpec
	d := m.one(t, "Deployment", &spec)
	e := edge{name: d.Metadata.Name, pod: spec.Template.Spec, labels: spec.Template.Metadata.Labels}
	if !subset(spec.Selector.MatchLabels, e.labels) || len(spec.Selector.MatchLabels) == 0 {
		t.Errorf("Deployment selector %v does not select its pods %v", spec.Selector.MatchLabels, e.labels)
	}
	var cs []container
	for _, c := range e.pod.Containers {
		if img, _ := imageRef(c.Image); img == m.df.image {
			cs = append(cs, c)
		}
	}
	if len(cs) != 1 {
		t.Fatalf("Deployment: %d containers run image %s, want 1", len(cs), m.df.image)
	}
	e.c = cs[0]

	// The config file: the ConfigMap mounted where the image reads it.
	var cm string
	for _, vm := range e.c.VolumeMounts {
		if path.Join(vm.MountPath, "config.yaml") != m.df.configPath {
			continue
		}
		for _, v := range e.pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm = v.ConfigMap.Name
			}
		}
	}
	if cm == "" {
		t.Fatalf("Deployment: no ConfigMap mounted so that config.yaml lands at the image's %s", m.df.configPath)
	}
	if i := slices.Index(e.c.Args, "-config"); i >= 0 && (i+1 >= len(e.c.Args) || e.c.Args[i+1] != m.df.configPath) {
		t.Errorf("args %v: -config is not the image's EDGEPROXY_CONFIG %s", e.c.Args, m.df.configPath)
	}
	e.file = []byte(m.named(t, "ConfigMap", cm).Data["config.yaml"])
	if len(e.file) == 0 {
		t.Fatalf("ConfigMap %s: no config.yaml", cm)
	}

	// The environment: literal values, pod fields (a stand-in value) and
	// the Secret's keys.
	e.env = map[string]string{}
	secret := func(name string) map[string]string {
		s := m.named(t, "Secret", name)
		out := maps.Clone(s.StringData)
		if out == nil {
			out = map[string]string{}
		}
		for k := range s.Data {
			t.Errorf("Secret %s: key %s in data (base64): keep placeholders in stringData so that they are checked", name, k)
		}
		return out
	}
	for _, ef := range e.c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			maps.Copy(e.env, secret(ef.SecretRef.Name))
		case ef.ConfigMapRef != nil:
			maps.Copy(e.env, m.named(t, "ConfigMap", ef.ConfigMapRef.Name).Data)
		}
	}
	for _, v := range e.c.Env {
		switch {
		case v.ValueFrom == nil:
			e.env[v.Name] = v.Value
		case v.ValueFrom.FieldRef != nil:
			e.env[v.Name] = "edgeproxy-7d9f8-abcde"
		case v.ValueFrom.SecretKeyRef != nil:
			val, ok := secret(v.ValueFrom.SecretKeyRef.Name)[v.ValueFrom.SecretKeyRef.Key]
			if !ok {
				t.Errorf("env %s: Secret %s has no key %s", v.Name, v.ValueFrom.SecretKeyRef.Name, v.ValueFrom.SecretKeyRef.Key)
			}
			e.env[v.Name] = val
		}
	}
	e.cfg = loadSettings(t, "ConfigMap "+cm+" config.yaml", e.file, e.env)
	return e
}

// port resolves a probe's or Service's target port (a number or a name)
// to the container's port number.
func (e edge) port(t *testing.T, p string) int {
	t.Helper()
	if n, err := strconv.Atoi(p); err == nil {
		return n
	}
	for _, cp := range e.c.Ports {
		if cp.Name == p {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", e.c.Name, p)
	return 0
}

func TestK8sConfigPassesCheck(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	checkConfig(t, "k8s ConfigMap config.yaml", e.file, e.env)
	for name := range e.env {
		if !strings.HasPrefix(name, "EDGEPROXY_") {
			t.Errorf("env %s: not an EDGEPROXY_ setting (the edge reads no other variable)", name)
		}
	}
}

func TestK8sImageAndUser(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	if _, tag := imageRef(e.c.Image); tag != m.df.tag {
		t.Errorf("image %s: tag %q, the Dockerfile builds %s:%s", e.c.Image, tag, m.df.image, m.df.tag)
	}
	var kust struct {
		Images []struct {
			Name   string `yaml:"name"`
			NewTag string `yaml:"newTag"`
		} `yaml:"images"`
	}
	decodeYAML(t, k8sDir+"/kustomization.yaml", &kust)
	for _, img := range kust.Images {
		if img.Name != e.c.Image && img.Name+":"+m.df.tag != e.c.Image {
			t.Errorf("kustomization images: %s matches no container image (%s)", img.Name, e.c.Image)
		}
		if img.NewTag != "" && img.NewTag != m.df.tag {
			t.Errorf("kustomization images: newTag %s, the Dockerfile builds %s:%s", img.NewTag, m.df.image, m.df.tag)
		}
	}
	sc := e.pod.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != m.df.uid ||
		sc.RunAsGroup == nil || *sc.RunAsGroup != m.df.gid {
		t.Errorf("pod securityContext: want runAsNonRoot and runAsUser/runAsGroup %d/%d (Dockerfile USER %s)", m.df.uid, m.df.gid, m.df.user)
	}
	csc := e.c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("container securityContext: readOnlyRootFilesystem is not true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("container securityContext: allowPrivilegeEscalation is not false")
	}
}

func TestK8sPortsAndProbes(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	listen := e.cfg.listenPort(t, "proxy.listen")
	admin := e.cfg.listenPort(t, "admin.listen")
	if !slices.Contains(m.df.expose, listen) {
		t.Errorf("proxy.listen port %d is not EXPOSEd by the Dockerfile (%v)", listen, m.df.expose)
	}
	ports := map[int]bool{}
	for _, p := range e.c.Ports {
		if p.ContainerPort != listen && p.ContainerPort != admin {
			t.Errorf("containerPort %s %d: neither proxy.listen (%d) nor admin.listen (%d)", p.Name, p.ContainerPort, listen, admin)
		}
		ports[p.ContainerPort] = true
	}
	if !ports[listen] || !ports[admin] {
		t.Errorf("container ports %v: want proxy.listen %d and admin.listen %d", e.c.Ports, listen, admin)
	}
	if h, _ := splitHostPort(t, "admin.listen", e.cfg.str(t, "admin.listen")); h != "" && h != "0.0.0.0" && h != "::" {
		t.Errorf("admin.listen %s: unreachable from outside the pod", e.cfg.str(t, "admin.listen"))
	}

	for _, pr := range []struct {
		name string
		p    *probe
		path string
		need bool
	}{
		{"livenessProbe", e.c.LivenessProbe, "/healthz", true},
		{"readinessProbe", e.c.ReadinessProbe, "/readyz", true},
		{"startupProbe", e.c.StartupProbe, "/healthz", false},
	} {
		if pr.p == nil {
			if pr.need {
				t.Errorf("no %s", pr.name)
			}
			continue
		}
		if pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: want httpGet %s", pr.name, pr.path)
			continue
		}
		if p := e.port(t, pr.p.HTTPGet.Port); p != listen {
			t.Errorf("%s: port %d, but /healthz and /readyz are served on proxy.listen %d", pr.name, p, listen)
		}
	}

	var services []k8sObject
	for _, o := range m.objects {
		if o.Kind == "Service" {
			services = append(services, o)
		}
	}
	seen := map[int]bool{}
	for _, o := range services {
		var s serviceSpec
		if err := o.Spec.Decode(&s); err != nil {
			t.Fatal(err)
		}
		if !subset(s.Selector, e.labels) || len(s.Selector) == 0 {
			t.Errorf("Service %s: selector %v does not select the edge pods %v", o.Metadata.Name, s.Selector, e.labels)
		}
		for _, p := range s.Ports {
			target := p.TargetPort
			if target == "" {
				target = strconv.Itoa(p.Port)
			}
			tp := e.port(t, target)
			if tp != listen && tp != admin {
				t.Errorf("Service %s port %s: targetPort %d is neither proxy.listen (%d) nor admin.listen (%d)", o.Metadata.Name, p.Name, tp, listen, admin)
			}
			seen[tp] = true
		}
	}
	if !seen[listen] {
		t.Errorf("no Service targets proxy.listen %d", listen)
	}
}

func TestK8sDrainTiming(t *testing.T) {
	e := loadK8s(t).edge(t)
	drain := e.cfg.duration(t, "proxy.drain_timeout")
	if e.pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds (the default 30s cuts the drain)")
	}
	grace := time.Duration(*e.pod.TerminationGracePeriodSeconds) * time.Second
	var sleep time.Duration
	if ps := e.c.Lifecycle.PreStop; ps == nil || ps.Sleep == nil {
		t.Error("no preStop sleep: the pod would stop accepting before the Service stops sending to it")
	} else {
		sleep = time.Duration(ps.Sleep.Seconds) * time.Second
	}
	if margin := grace - sleep - drain; margin < time.Second || margin > 15*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want preStop sleep %v + proxy.drain_timeout %v + a margin of 1s to 15s", grace, sleep, drain)
	}
}

func TestK8sMemoryMatchesCache(t *testing.T) {
	e := loadK8s(t).edge(t)
	mem := e.cfg.size(t, "cache.memory_bytes")
	base := mem + documentedOverhead + max(0, e.cfg.size(t, "cache.fill_memory")-defaultSize(t, "cache.fill_memory"))
	// The soft memory limit grants each open connection the proxy's
	// ConnMemory (cmd/edgeproxy memoryLimit); at max_conns the heap may use
	// all of it.
	srv := edgeServer(t, e.cfg)
	conns, perConn := int64(srv.Config().MaxConns), srv.ConnMemory()
	need := base + conns*perConn
	req := quantity(t, e.c.Resources.Requests["memory"])
	lim := quantity(t, e.c.Resources.Limits["memory"])
	if req < base {
		t.Errorf("memory request %s (%d) < cache.memory_bytes + %d MiB overhead = %d", e.c.Resources.Requests["memory"], req, documentedOverhead>>20, base)
	}
	if lim < need {
		t.Errorf("memory limit %s (%d) < cache.memory_bytes + overhead + max_conns (%d) x the proxy's ConnMemory (%d) = %d", e.c.Resources.Limits["memory"], lim, conns, perConn, need)
	}
	if lim < req {
		t.Errorf("memory limit %d below the request %d", lim, req)
	}
	if e.c.Resources.Requests["cpu"] == "" {
		t.Error("no cpu request: the HPA's utilisation target has nothing to divide by")
	}
}

// edgeServer builds (without serving) the proxy the ConfigMap configures,
// as far as the memory a connection costs goes: proxy.max_conns and the
// two buffer sizes, defaults filled in by proxy.New.
func edgeServer(t *testing.T, cfg settings) *proxy.Server {
	t.Helper()
	maxConns, err := strconv.Atoi(cfg.str(t, "proxy.max_conns"))
	if err != nil {
		t.Fatalf("proxy.max_conns: %v", err)
	}
	o, err := origin.NewDir(origin.DirConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{
		MaxConns:       maxConns,
		WriteBuffer:    int(cfg.size(t, "proxy.write_buffer")),
		MaxHeaderBytes: int(cfg.size(t, "proxy.max_header_bytes")),
		DownloadBucket: "unused", // routing is not what is measured
	}, proxy.Deps{Origin: o})
	if err != nil {
		t.Fatalf("the ConfigMap's proxy settings: %v", err)
	}
	return srv
}

func TestK8sDiskTier(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	dir := e.cfg.str(t, "cache.disk_dir")
	if dir == "" {
		t.Fatal("cache.disk_dir is empty: no disk tier")
	}
	var vol string
	for _, vm := range e.c.VolumeMounts {
		if path.Clean(vm.MountPath) == path.Clean(dir) {
			vol = vm.Name
		}
	}
	if vol == "" {
		t.Fatalf("cache.disk_dir %s: no volume mounted there (the root file system is read-only)", dir)
	}
	for _, v := range e.pod.Volumes {
		if v.Name != vol {
			continue
		}
		switch {
		case v.HostPath != nil:
			if v.HostPath.Type != "Directory" {
				t.Errorf("hostPath %s: type %q; want Directory, prepared for uid %d (the kubelet would create it owned by root)", v.HostPath.Path, v.HostPath.Type, m.df.uid)
			}
			// Two pods on one node would share the directory: one per node.
			ok := false
			for _, a := range e.pod.Affinity.PodAntiAffinity.Required {
				ok = ok || (a.TopologyKey == "kubernetes.io/hostname" && subset(a.LabelSelector.MatchLabels, e.labels) && len(a.LabelSelector.MatchLabels) > 0)
			}
			if !ok {
				t.Error("hostPath disk tier without required pod anti-affinity on kubernetes.io/hostname: two caches could share the directory")
			}
		case v.PersistentVolumeClaim != nil:
		default:
			t.Errorf("volume %s of cache.disk_dir: want hostPath or a local PersistentVolume", vol)
		}
	}
}

func TestK8sScaling(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	var h hpaSpec
	m.one(t, "HorizontalPodAutoscaler", &h)
	r := h.ScaleTargetRef
	if r.Kind != "Deployment" || r.Name != e.name || r.APIVersion != "apps/v1" {
		t.Errorf("HPA scaleTargetRef %+v: want the Deployment %s", r, e.name)
	}
	if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
		t.Errorf("HPA replicas: want 2 <= minReplicas <= maxReplicas")
	}
	for _, mt := range h.Metrics {
		if mt.Resource != nil && e.c.Resources.Requests[mt.Resource.Name] == "" {
			t.Errorf("HPA scales on %s, which the container does not request", mt.Resource.Name)
		}
	}
	var p pdbSpec
	m.one(t, "PodDisruptionBudget", &p)
	if !subset(p.Selector.MatchLabels, e.labels) || len(p.Selector.MatchLabels) == 0 {
		t.Errorf("PodDisruptionBudget selector %v does not select the edge pods %v", p.Selector.MatchLabels, e.labels)
	}
	switch {
	case p.MaxUnavailable != nil && *p.MaxUnavailable >= 1:
	case p.MinAvailable != nil && h.MinReplicas != nil && *p.MinAvailable < *h.MinReplicas:
	default:
		t.Error("PodDisruptionBudget: want maxUnavailable >= 1 or minAvailable below the HPA's minReplicas (else no node can drain)")
	}
}

// quantity parses a Kubernetes memory quantity ("1536Mi", "2Gi", "1G", bytes).
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return v * u.mult
		}
	}
	v, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The edge addresses every node of the distributed MinIO itself (origin
// pool: health checks, ejection, failover), not one load-balanced name:
// four StatefulSet pods minio-0..3 behind one headless Service, one port.
func TestK8sOriginAllMinIONodes(t *testing.T) {
	m := loadK8s(t)
	e := m.edge(t)
	eps := e.cfg.list(t, "origin.s3.endpoints")
	if len(eps) != 4 {
		t.Fatalf("origin.s3.endpoints %v: want the 4 MinIO nodes", eps)
	}
	if ep := e.cfg.str(t, "origin.s3.endpoint"); ep != "" {
		t.Errorf("origin.s3.endpoint %q set beside endpoints: the edge refuses both", ep)
	}
	var domain string
	var port int
	for i, ep := range eps {
		host, p := splitHostPort(t, "origin.s3.endpoints", ep)
		pod, rest, ok := strings.Cut(host, ".")
		if !ok || pod != "minio-"+strconv.Itoa(i) {
			t.Errorf("origin.s3.endpoints[%d] %s: want the StatefulSet pod minio-%d", i, ep, i)
		}
		if i == 0 {
			domain, port = rest, p
		} else if rest != domain || p != port {
			t.Errorf("origin.s3.endpoints[%d] %s: not %s:%d like the first node", i, ep, domain, port)
		}
	}
	if !strings.HasSuffix(domain, ".svc.cluster.local") {
		t.Errorf("origin.s3.endpoints under %s: want a headless Service's cluster DNS name", domain)
	}
}
