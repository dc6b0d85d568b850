package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

var (
	edgectlOnce sync.Once
	edgectlPath string
	edgectlErr  error
)

// edgectl builds cmd/edgectl once: the catalog write is tested as the
// operator makes it.
func edgectl(t *testing.T) string {
	t.Helper()
	edgectlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgectl-bin-")
		if err != nil {
			edgectlErr = err
			return
		}
		edgectlPath = filepath.Join(dir, "edgectl")
		out, err := exec.Command("go", "build", "-o", edgectlPath, "../edgectl").CombinedOutput()
		if err != nil {
			edgectlErr = fmt.Errorf("go build edgectl: %v\n%s", err, out)
		}
	})
	if edgectlErr != nil {
		t.Fatal(edgectlErr)
	}
	return edgectlPath
}

func runEdgectl(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(edgectl(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("edgectl %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func getStatus(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestPostgresCatalogEndToEnd runs two edge nodes on one Redis and one
// PostgreSQL: a file registered with edgectl on node 1 is served by node 2
// (which had answered 404 for it and would remember that for an hour)
// within a second; downloads from both nodes reach file_access_counts
// exactly; with PostgreSQL stopped, cached ids keep serving and an
// uncached one gets 503 catalog_unavailable quickly.
func TestPostgresCatalogEndToEnd(t *testing.T) {
	pg := testenv.NewPostgres(t)
	r := testenv.NewRedis(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "b"), 0o755)
	body := bytes.Repeat([]byte("x"), 4096)
	for _, f := range []string{"one.bin", "two.bin"} {
		if err := os.WriteFile(filepath.Join(root, "b", f), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	migrated := runEdgectl(t, []string{"EDGECTL_POSTGRES_DSN=" + pg.DSN}, "db", "migrate")
	if !bytes.Contains(migrated, []byte(`"version":1`)) {
		t.Fatalf("db migrate printed %s", migrated)
	}
	env := func(extra ...string) []string {
		return append([]string{
			"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
			"EDGEPROXY_ORIGIN_KIND=dir",
			"EDGEPROXY_ORIGIN_DIR_ROOT=" + root,
			"EDGEPROXY_REDIS_ADDRS=" + r.Addr,
			"EDGEPROXY_POSTGRES_DSN=" + pg.DSN,
			"EDGEPROXY_AUTH_CATALOG_ENABLED=true",
			"EDGEPROXY_AUTH_CATALOG_NEGATIVE_TTL=1h",
			// Generous for a loaded machine running -race.
			"EDGEPROXY_AUTH_CATALOG_TIMEOUT=500ms",
			"EDGEPROXY_AUTH_CATALOG_SOURCE_TIMEOUT=1s",
			"EDGEPROXY_STATS_FLUSH_INTERVAL=50ms",
			"EDGEPROXY_ADMIN_LISTEN=127.0.0.1:0",
			"EDGEPROXY_ADMIN_KEY=" + adminKey,
		}, extra...)
	}
	p1 := start(t, []string{"-config", "../../config.yaml"}, env("EDGEPROXY_POSTGRES_SYNC_INTERVAL=100ms"))
	p2 := start(t, []string{"-config", "../../config.yaml"}, env("EDGEPROXY_POSTGRES_SYNC_INTERVAL=-1s"))
	admin1, _ := p1.adminAddr.Load().(string)
	ctlEnv := []string{"EDGECTL_ADDR=http://" + admin1, "EDGECTL_ADMIN_KEY=" + adminKey}

	// Node 2 learns that id 1 does not exist.
	if code, _, b := getStatus(t, "http://"+p2.addr+"/download/1"); code != 404 {
		t.Fatalf("unknown id: %d %s", code, b)
	}
	var rec struct {
		ID string `json:"id"`
	}
	out := runEdgectl(t, ctlEnv, "file", "put", "-bucket", "b", "-key", "one.bin", "-size", "4096",
		"-sha256", strings.Repeat("1", 64))
	if err := json.Unmarshal(out, &rec); err != nil || rec.ID != "1" {
		t.Fatalf("file put printed %s (%v)", out, err)
	}
	registered := time.Now()
	for {
		code, _, b := getStatus(t, "http://"+p2.addr+"/download/1")
		if code == 200 && bytes.Equal(b, body) {
			break
		}
		if time.Since(registered) > 10*time.Second {
			t.Fatalf("node 2 still answers %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond) // gentle: failed ids count toward the failure throttle
	}
	lag := time.Since(registered)
	t.Logf("registered on node 1 -> served by node 2 after %v", lag)
	if lag > time.Second {
		t.Errorf("node 2 served the new file after %v, want within 1s", lag)
	}
	// The same content again: the existing record, no new id.
	out = runEdgectl(t, ctlEnv, "file", "put", "-bucket", "b", "-key", "copy.bin", "-sha256", strings.Repeat("1", 64))
	if err := json.Unmarshal(out, &rec); err != nil || rec.ID != "1" {
		t.Fatalf("file put of known content printed %s", out)
	}
	out = runEdgectl(t, ctlEnv, "file", "put", "-bucket", "b", "-key", "two.bin", "-size", "4096")
	if err := json.Unmarshal(out, &rec); err != nil || rec.ID != "2" {
		t.Fatalf("second file put printed %s", out)
	}

	// Downloads through both nodes (plus the one that ended the wait
	// above); node 1 syncs every 100ms.
	const downloads = 60
	served := int64(1)
	for i := range downloads {
		served++
		p := p1
		if i%2 == 1 {
			p = p2
		}
		if code, _, _ := getStatus(t, "http://"+p.addr+"/download/1"); code != 200 {
			t.Fatalf("download %d: %d", i, code)
		}
	}
	var st struct {
		Accesses int64 `json:"accesses"`
		Synced   int64 `json:"synced"`
	}
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool {
		out := runEdgectl(t, ctlEnv, "stats", "-file", "1")
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("stats printed %s", out)
		}
		return st.Synced == served && st.Accesses == 0
	}) {
		t.Fatalf("stats -file 1: synced %d + live %d, want %d synced", st.Synced, st.Accesses, served)
	}

	list := runEdgectl(t, ctlEnv, "file", "list", "-limit", "10")
	if !bytes.Contains(list, []byte(`"id":"1"`)) || !bytes.Contains(list, []byte(`"id":"2"`)) {
		t.Fatalf("file list printed %s", list)
	}
	if code, _, b := getStatus(t, "http://"+p2.addr+"/readyz"); code != 200 || !bytes.Contains(b, []byte(`"catalog":"ok"`)) {
		t.Fatalf("readyz: %d %s", code, b)
	}

	// PostgreSQL down: the cached id serves, the uncached one is 503.
	pg.Stop(t)
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool {
		code, _, b := getStatus(t, "http://"+p2.addr+"/readyz")
		return code == 200 && bytes.Contains(b, []byte(`"catalog":"unavailable"`))
	}) {
		t.Fatal("readyz does not report the catalog unavailable")
	}
	for _, p := range []*proc{p1, p2} {
		if code, _, _ := getStatus(t, "http://"+p.addr+"/download/1"); code != 200 {
			t.Fatalf("cached id with PostgreSQL down: %d", code)
		}
	}
	began := time.Now()
	code, h, b := getStatus(t, "http://"+p2.addr+"/download/2")
	if code != 503 || !bytes.Contains(b, []byte("catalog_unavailable")) || h.Get("Retry-After") == "" {
		t.Fatalf("uncached id with PostgreSQL down: %d %s (Retry-After %q)", code, b, h.Get("Retry-After"))
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("503 took %v", d)
	}
	pg.Start(t)
	if !testenv.Poll(context.Background(), 30*time.Second, func() bool {
		code, _, _ := getStatus(t, "http://"+p2.addr+"/download/2")
		return code == 200
	}) {
		t.Fatal("id 2 not served after PostgreSQL came back")
	}
	// Removed on node 1: every node stops serving it.
	runEdgectl(t, ctlEnv, "file", "rm", "2")
	if !testenv.Poll(context.Background(), 10*time.Second, func() bool {
		code, _, _ := getStatus(t, "http://"+p2.addr+"/download/2")
		return code == 404
	}) {
		t.Fatal("id 2 still served by node 2 after file rm")
	}
}
