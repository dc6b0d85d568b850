package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestPoolNodeKilledDuringColdDownloads is issue 14's must-show: a 4-node
// distributed MinIO behind the real binary's endpoint pool; one node is
// killed (SIGKILL) while 32 clients download the same cold 96 MiB object.
// Every download must complete byte-exact, and the bytes the origin sent
// (counted on the wire by relays in front of each node) must stay within
// 1.1x the object: coalesced fills, and a fill cut mid-chunk resumes from
// the byte reached on another node instead of starting over.
func TestPoolNodeKilledDuringColdDownloads(t *testing.T) {
	const (
		size    = 96 << 20
		clients = 32
	)
	cluster := testenv.NewMinIOCluster(t)
	mc := cluster.Client(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bucket := "pool-failover"
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 14))
	hash := sha256.New()
	src := io.TeeReader(io.LimitReader(rngReader{rng}, size), hash)
	if _, err := mc.PutObject(ctx, bucket, "big.bin", src, size, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	want := hash.Sum(nil)

	relays := make([]*testenv.Relay, len(cluster.Endpoints))
	addrs := make([]string, len(relays))
	for i, ep := range cluster.Endpoints {
		relays[i] = testenv.NewRelay(t, ep)
		// 1 MiB fills take about 125ms each: with readahead several are
		// in flight on every node when the kill comes.
		relays[i].Throttle(8 << 20)
		addrs[i] = relays[i].Addr
	}
	originBytes := func() int64 {
		var n int64
		for _, r := range relays {
			n += r.Bytes()
		}
		return n
	}
	p := start(t, []string{"-config", "../../config.yaml"}, []string{
		"EDGEPROXY_PROXY_LISTEN=127.0.0.1:0",
		"EDGEPROXY_PROXY_DOWNLOAD_BUCKET=" + bucket,
		"EDGEPROXY_PROXY_ACCESS_LOG=false",
		"EDGEPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"EDGEPROXY_ADMIN_KEY=" + adminKey,
		"EDGEPROXY_ORIGIN_S3_ENDPOINT=",
		"EDGEPROXY_ORIGIN_S3_ENDPOINTS=" + strings.Join(addrs, ","),
		"EDGEPROXY_ORIGIN_S3_ACCESS_KEY=" + cluster.AccessKey,
		"EDGEPROXY_ORIGIN_S3_SECRET_KEY=" + cluster.SecretKey,
		"EDGEPROXY_ORIGIN_S3_HEALTH_INTERVAL=250ms",
	})
	base := originBytes() // health checks so far

	var (
		wg        sync.WaitGroup
		delivered atomic.Int64
		mu        sync.Mutex
		failures  []string
	)
	for i := range clients {
		wg.Go(func() {
			err := download(ctx, "http://"+p.addr+"/download/big.bin", want, &delivered)
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("client %d: %v", i, err))
				mu.Unlock()
			}
		})
	}
	// Kill a node once a third of the object has come from the origin.
	if !testenv.Poll(context.Background(), 2*time.Minute, func() bool { return originBytes()-base >= size/3 }) {
		t.Fatalf("origin sent only %d bytes in 2 minutes", originBytes()-base)
	}
	// The victim is a node streaming a fill body right now (its relay
	// moved more than health checks would in 100ms), so that the kill cuts
	// a body mid-way rather than only refusing new requests.
	victim := -1
	if !testenv.Poll(context.Background(), time.Minute, func() bool {
		before := make([]int64, len(relays))
		for i, r := range relays {
			before[i] = r.Bytes()
		}
		time.Sleep(100 * time.Millisecond) // sampling window, not synchronisation
		for i, r := range relays {
			if r.Bytes()-before[i] > 64<<10 {
				// Still streaming right now? A body that ended inside the
				// window would make the kill cut nothing.
				b := r.Bytes()
				time.Sleep(20 * time.Millisecond)
				if r.Bytes() > b {
					victim = i
					return true
				}
			}
		}
		return false
	}) {
		t.Fatal("no node was streaming a body")
	}
	// Cut the relay as well as killing the node: the node's data still in
	// socket buffers must not complete the bodies a crash would cut.
	relays[victim].Cut()
	cluster.Kill(t, victim)
	killed := time.Now()
	var detect time.Duration
	atKill := originBytes() - base
	if testenv.Poll(context.Background(), time.Minute, func() bool { return metric(t, p, "edgeproxy_origin_endpoint_up", addrs[victim]) == "0" }) {
		detect = time.Since(killed)
	} else {
		t.Errorf("the killed node's endpoint still up a minute later")
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d downloads failed:\n%s", len(failures), clients, strings.Join(failures, "\n"))
	}
	ratio := float64(originBytes()-base) / size
	victimFailures := metric(t, p, "edgeproxy_origin_endpoint_failures_total", addrs[victim])
	t.Logf("%d/%d downloads byte-exact; origin sent %d bytes for a %d-byte object (%.3fx), %d MiB of it before the kill; "+
		"killed node marked down after %v, %s failed requests on it",
		clients, clients, originBytes()-base, size, ratio, atKill>>20, detect, victimFailures)
	for _, a := range addrs {
		t.Logf("endpoint %s: requests %s failures %s ejections %s", a, metric(t, p, "edgeproxy_origin_endpoint_requests_total", a),
			metric(t, p, "edgeproxy_origin_endpoint_failures_total", a), metric(t, p, "edgeproxy_origin_endpoint_ejections_total", a))
	}
	// The kill must have landed mid-transfer, or the test shows nothing.
	if atKill >= size*9/10 || victimFailures == "0" || victimFailures == "" {
		t.Fatalf("the kill came too late to matter: %d of %d bytes fetched, %q failures on the node", atKill, size, victimFailures)
	}
	if ratio > 1.1 {
		t.Fatalf("origin sent %.3fx the object, want <= 1.1x", ratio)
	}
}

// download GETs url and checks the body's sha256 against want.
func download(ctx context.Context, url string, want []byte, delivered *atomic.Int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	// Read at about 20 MiB/s, so that the cold fills (paced by readers
	// plus readahead) span seconds and the kill lands in the middle.
	h := sha256.New()
	var n int64
	buf := make([]byte, 256<<10)
	for {
		k, err := io.ReadFull(resp.Body, buf)
		h.Write(buf[:k])
		n += int64(k)
		delivered.Add(int64(k))
		if err == io.EOF || err == io.ErrUnexpectedEOF && resp.ContentLength == n {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n, err)
		}
		time.Sleep(12 * time.Millisecond) // pacing the client, not synchronisation
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%d bytes, sha256 mismatch", n)
	}
	return nil
}

// metric returns the value of the per-endpoint metric name for ep from
// the admin API's /metrics, or "" when absent.
func metric(t *testing.T, p *proc, name, ep string) string {
	t.Helper()
	admin, _ := p.adminAddr.Load().(string)
	if admin == "" {
		t.Fatal("the admin listener logged no address")
	}
	req, _ := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf("%s{endpoint=%q} ", name, ep)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}
