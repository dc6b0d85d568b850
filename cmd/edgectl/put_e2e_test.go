package main

// End-to-end test of edgectl put through the real tus endpoint (package
// upload, mounted on the proxy) over real MinIO and Redis: parallel
// partial uploads, kill -9 of the real binary and resume, then edgectl get
// of the registered file, verified against the SHA-256 the upload put in
// the catalog.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/proxy"
	"github.com/edgeproxy/edgeproxy/upload"
)

func TestPutE2E(t *testing.T) {
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	rc := testenv.Redis(t).Client(t)
	prefix := "edgectl-put-test:" + strconv.FormatInt(realSeq.Add(1), 10) + ":"
	var up *upload.Uploads
	p := startGetProxy(t, func(cfg *proxy.Config, deps *proxy.Deps) {
		store, err := origin.NewS3(origin.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		up, err = upload.New(upload.Config{Enabled: true, PartSize: 5 << 20, MaxSize: 1 << 30, TempDir: t.TempDir(),
			KeyPrefix: prefix + "upload:", Buckets: []string{bucket}, PurgeChannel: prefix + "purge", JanitorInterval: -1, Expiry: time.Hour},
			upload.Deps{Redis: rc, S3: store, Catalog: deps.Catalog.(upload.Registry)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { up.Close() })
		cfg.DownloadAuth, deps.Uploads = proxy.AuthNone, up
	})
	bin := buildEdgectl(t)
	tok, err := up.CreateToken(context.Background(), upload.Grant{Bucket: bucket, Key: "up/big.bin", FileID: "up1", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const size = 40<<20 + 4321 // two partial uploads of 20 MiB
	data := randomBytes(t, size)
	src := writeTemp(t, "big.bin", data)
	state := filepath.Join(t.TempDir(), "put.json")
	env := []string{"EDGECTL_UPLOAD_URL=" + p.url + "/uploads/", "EDGECTL_UPLOAD_TOKEN=" + tok}

	// Killed in the middle, while the proxy reads slowly.
	p.slow.Store(true)
	cmd := execBinary(bin, env, "put", src, "-c", "4", "-state", state)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitBeforeKill(t, cmd, exited, 90*time.Second, "the proxy to read 12 MiB", func() bool { return p.recv.Load() >= 12<<20 })
	cmd.Process.Kill()
	<-exited
	p.slow.Store(false)
	raw, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("no state after kill -9: %v", err)
	}
	noSecret(t, "state file", string(raw), tok)

	before := p.recv.Load()
	code, stdout, stderr := runBinary(t, bin, env, "put", src, "-c", "4", "-state", state)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	noSecret(t, "stderr", stderr, tok)
	var res putResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Parts != 2 || res.SHA256 != hexSHA(data) {
		t.Fatalf("stdout %q (%v)", stdout, err)
	}
	if read := p.recv.Load() - before; res.Sent >= size || read >= size {
		t.Fatalf("resume sent %d bytes (the proxy read %d): no fewer than the %d-byte file", res.Sent, read, size)
	}
	core, err := minio.NewCore(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := core.ListMultipartUploads(context.Background(), bucket, "", "", "", "", 1000); err != nil || len(r.Uploads) != 0 {
		t.Fatalf("ListMultipartUploads: %d left (%v)", len(r.Uploads), err)
	}

	// The file is in the catalog with its SHA-256: edgectl get verifies it.
	file := filepath.Join(t.TempDir(), "back.bin")
	code, stdout, stderr = p.run(t, nil, "get", p.url+"/download/up1", "-c", "8", "-o", file)
	if code != 0 {
		t.Fatalf("get: exit %d: %s", code, stderr)
	}
	var g getResult
	if err := json.Unmarshal([]byte(stdout), &g); err != nil || !g.Verified || g.SHA256 != hexSHA(data) {
		t.Fatalf("get stdout %q (%v)", stdout, err)
	}
}

func noSecret(t *testing.T, where, s, secret string) {
	t.Helper()
	if len(secret) > 0 && strings.Contains(s, secret) {
		t.Fatalf("%s shows the token: %q", where, s)
	}
}
