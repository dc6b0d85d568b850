package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgeproxy/edgeproxy/internal/config"
)

// root is the repository, seen from this package's directory (go test runs
// a package's tests in its directory).
const root = ".."

// documentedOverhead is the memory an edge needs beside its memory tier
// (heap for fills in flight, connection state, the runtime): "the process
// stays near memory_bytes + 100 MiB" (cmd/edgeproxy, memoryOverhead, whose
// 80 MiB allowance includes config.yaml's default cache.fill_memory).
// Each open connection's memory (proxy.ConnOverhead and its two buffers)
// comes on top: the soft limit grows with them.
const documentedOverhead = 100 << 20

// readFile reads a file of the repository.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeDocs parses every document of a YAML file.
func decodeDocs(t *testing.T, rel string) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return docs
			}
			t.Fatalf("%s: %v", rel, err)
		}
		docs = append(docs, &n)
	}
}

// decodeYAML decodes the one document of a YAML file into v (merge keys
// and anchors resolved by yaml.v3; fields v does not have are ignored).
func decodeYAML(t *testing.T, rel string, v any) {
	t.Helper()
	docs := decodeDocs(t, rel)
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", rel, len(docs))
	}
	if err := docs[0].Decode(v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// dockerfile is what the deployments must agree with in the Dockerfile.
type dockerfile struct {
	image, tag string          // from the "# Build: docker build -t NAME:TAG ." comment
	base       string          // the final stage's FROM
	expose     []int           // EXPOSE of the final stage
	user       string          // USER, as written
	uid, gid   int             // USER as numbers
	configPath string          // ENV EDGEPROXY_CONFIG
	entrypoint string          // the first word of ENTRYPOINT
	ownedDirs  map[string]bool // COPY --chown=USER destinations of the final stage
}

// distrolessUsers are the accounts of distroless images' /etc/passwd, which
// a named USER refers to.
var distrolessUsers = map[string]int{"root": 0, "nonroot": 65532, "nobody": 65534}

var buildComment = regexp.MustCompile(`^#\s*Build:\s*docker build -t (\S+) \.`)

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	d := dockerfile{ownedDirs: map[string]bool{}, uid: -1, gid: -1}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	var chowns [][2]string // user, destination
	var cont string        // an instruction continued on the next line
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont != "" && !strings.HasPrefix(line, "#") {
			line = cont + " " + line
			cont = ""
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok && !strings.HasPrefix(line, "#") {
			cont = strings.TrimSpace(l)
			continue
		}
		if m := buildComment.FindStringSubmatch(line); m != nil {
			d.image, d.tag, _ = strings.Cut(m[1], ":")
			if d.tag == "" {
				d.tag = "latest"
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		inst, rest, _ := strings.Cut(line, " ")
		args := strings.Fields(rest)
		switch strings.ToUpper(inst) {
		case "FROM":
			d.base, d.expose, d.user, d.configPath, d.entrypoint = args[0], nil, "", "", ""
			chowns = nil
		case "EXPOSE":
			for _, a := range args {
				p, err := strconv.Atoi(strings.TrimSuffix(a, "/tcp"))
				if err != nil {
					t.Fatalf("Dockerfile: EXPOSE %q: %v", a, err)
				}
				d.expose = append(d.expose, p)
			}
		case "USER":
			d.user = args[0]
		case "ENV":
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, config.EnvConfigFile+"="); ok {
					d.configPath = v
				}
			}
		case "ENTRYPOINT":
			var ep []string
			if err := yaml.Unmarshal([]byte(rest), &ep); err != nil || len(ep) == 0 {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: want the exec form", rest)
			}
			d.entrypoint = ep[0]
		case "COPY":
			for _, a := range args {
				if u, ok := strings.CutPrefix(a, "--chown="); ok {
					chowns = append(chowns, [2]string{u, args[len(args)-1]})
				}
			}
		}
	}
	if d.image == "" {
		t.Fatal("Dockerfile: no \"# Build: docker build -t NAME:TAG .\" comment naming the image")
	}
	d.uid, d.gid = resolveUser(t, d.base, d.user)
	for _, c := range chowns {
		uid, gid := resolveUser(t, d.base, c[0])
		if uid == d.uid && gid == d.gid {
			d.ownedDirs[filepath.Clean(c[1])] = true
		}
	}
	return d
}

// resolveUser turns USER or --chown's user[:group] into numbers: numbers
// stay, names are looked up among a distroless image's accounts.
func resolveUser(t *testing.T, base, spec string) (uid, gid int) {
	t.Helper()
	if spec == "" {
		t.Fatal("Dockerfile: no USER in the final stage: the image would run as root")
	}
	u, g, ok := strings.Cut(spec, ":")
	if !ok {
		g = u
	}
	id := func(s string) int {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
		if !strings.HasPrefix(base, "gcr.io/distroless/") {
			t.Fatalf("Dockerfile: user %q of base %s: write it as a number", s, base)
		}
		n, ok := distrolessUsers[s]
		if !ok {
			t.Fatalf("Dockerfile: user %q is not an account of distroless images", s)
		}
		return n
	}
	return id(u), id(g)
}

// imageRef splits an image reference into its name (last path element)
// and tag.
func imageRef(ref string) (name, tag string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	name, tag = ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	return name[strings.LastIndex(name, "/")+1:], tag
}

// settings is an edge's effective configuration as the keys of config.yaml
// see it: the documented defaults of config.yaml, overlaid by a deployment's
// config file, overlaid by EDGEPROXY_* variables. Values are the YAML
// leaves: scalars and sequences (mappings that config.yaml leaves empty,
// such as auth.signer.keys, are leaves too).
type settings struct {
	leaves map[string]*yaml.Node
}

// defaults flattens config.yaml once.
var defaults = sync.OnceValues(func() (map[string]*yaml.Node, error) {
	b, err := os.ReadFile(filepath.Join(root, "config.yaml"))
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config.yaml: %w", err)
	}
	out := map[string]*yaml.Node{}
	flatten(doc.Content[0], "", out)
	return out, nil
})

// flatten records the leaves under n by dotted key path.
func flatten(n *yaml.Node, key string, out map[string]*yaml.Node) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || (len(n.Content) == 0 && key != "") {
		out[key] = n
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if key != "" {
			k = key + "." + k
		}
		flatten(n.Content[i+1], k, out)
	}
}

// envNames maps each variable name the loader accepts, by its EnvName
// rule, to the key of config.yaml it overrides.
func envNames(t *testing.T) map[string]string {
	t.Helper()
	def, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for k := range def {
		names[config.EnvName(k)] = k
	}
	return names
}

// loadSettings builds the effective configuration of a deployment's config
// file (its text) and environment. Every key the file sets must be one
// config.yaml documents, every EDGEPROXY_ variable one that names a key.
func loadSettings(t *testing.T, what string, file []byte, env map[string]string) settings {
	t.Helper()
	def, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	s := settings{leaves: map[string]*yaml.Node{}}
	for k, v := range def {
		s.leaves[k] = v
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	set := map[string]*yaml.Node{}
	if len(doc.Content) > 0 {
		flatten(doc.Content[0], "", set)
	}
	for k, v := range set {
		if !documented(def, k) {
			t.Errorf("%s: key %q is not in config.yaml", what, k)
		}
		s.leaves[k] = v
	}
	names := envNames(t)
	for name, val := range env {
		if !strings.HasPrefix(name, config.EnvPrefix) || name == config.EnvConfigFile {
			continue
		}
		k, ok := names[name]
		if !ok {
			t.Errorf("%s: variable %s names no key of config.yaml", what, name)
			continue
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Value: val}
		if def[k].Kind == yaml.SequenceNode {
			n = &yaml.Node{Kind: yaml.SequenceNode}
			for _, item := range strings.Split(val, ",") {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(item)})
			}
		}
		s.leaves[k] = n
	}
	return s
}

// documented reports whether config.yaml has key k, or a map or list
// (such as auth.signer.keys or proxy.routes) that k lies inside.
func documented(def map[string]*yaml.Node, k string) bool {
	for p := k; ; {
		if n, ok := def[p]; ok {
			return p == k || n.Kind != yaml.ScalarNode
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

func (s settings) str(t *testing.T, key string) string {
	t.Helper()
	n, ok := s.leaves[key]
	if !ok || n.Kind != yaml.ScalarNode {
		t.Fatalf("config key %q: not a scalar of config.yaml", key)
	}
	return n.Value
}

// defaultSize is a size key's value in config.yaml.
func defaultSize(t *testing.T, key string) int64 {
	t.Helper()
	def, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	return settings{leaves: def}.size(t, key)
}

func (s settings) list(t *testing.T, key string) []string {
	t.Helper()
	n, ok := s.leaves[key]
	if !ok || n.Kind != yaml.SequenceNode {
		t.Fatalf("config key %q: not a list of config.yaml", key)
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, c.Value)
	}
	return out
}

func (s settings) duration(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s.str(t, key))
	if err != nil {
		t.Fatalf("config key %q: %v", key, err)
	}
	return d
}

func (s settings) size(t *testing.T, key string) int64 {
	t.Helper()
	n, err := config.ParseSize(s.str(t, key))
	if err != nil {
		t.Fatalf("config key %q: %v", key, err)
	}
	return n
}

// listenPort is the port of a listen address such as ":8080".
func (s settings) listenPort(t *testing.T, key string) int {
	t.Helper()
	_, port := splitHostPort(t, key, s.str(t, key))
	return port
}

func splitHostPort(t *testing.T, what, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: port %v", what, addr, err)
	}
	return host, port
}

// binDir holds the binary edgeBinary built, if it did.
var binDir string

// edgeBinary builds cmd/edgeproxy once per test run.
var edgeBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "edgeproxy-deploy-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "edgeproxy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/edgeproxy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/edgeproxy: %v\n%s", err, out)
	}
	return bin, nil
})

// TestMain removes the binary edgeBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runCheck runs `edgeproxy -config FILE -check` on a deployment's config
// text with exactly the deployment's EDGEPROXY_* variables (none of the
// test process's own), and returns its exit code and output.
func runCheck(t *testing.T, file []byte, env map[string]string) (int, string) {
	t.Helper()
	bin, err := edgeBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path, "-check")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

// checkConfig asserts that the real binary accepts a deployment's config.
func checkConfig(t *testing.T, what string, file []byte, env map[string]string) {
	t.Helper()
	code, out := runCheck(t, file, env)
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Errorf("%s: edgeproxy -check exited %d:\n%s", what, code, out)
	}
}

// TestCheckRefusesUnknownSettings proves the gate the other tests rely on:
// the binary's -check fails on a key or an EDGEPROXY_ variable that names
// no setting.
func TestCheckRefusesUnknownSettings(t *testing.T) {
	ok := readFile(t, "config.yaml")
	if code, out := runCheck(t, ok, nil); code != 0 {
		t.Fatalf("config.yaml fails -check (%d): %s", code, out)
	}
	bad := bytes.Replace(ok, []byte("\n  listen: "), []byte("\n  listne: "), 1)
	if code, out := runCheck(t, bad, nil); code != 2 || !strings.Contains(out, "proxy.listne") {
		t.Errorf("unknown key: -check exited %d: %s", code, out)
	}
	if code, out := runCheck(t, ok, map[string]string{"EDGEPROXY_PROXY_LISTNE": ":8080"}); code != 2 || !strings.Contains(out, "EDGEPROXY_PROXY_LISTNE") {
		t.Errorf("unknown variable: -check exited %d: %s", code, out)
	}
}
