package main

// The access-layers section: edgeproxy alone on the hot 4 KiB object, plain
// and with each access layer switched on through EDGEPROXY_* overrides, so
// the cost of a layer is a ratio measured in the same run on the same
// machine. The thresholds are the targets.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// tokenKeyPrefix is auth.key_prefix of the repository's config.yaml.
const tokenKeyPrefix = "download:token:"

// layerVariant is one edgeproxy configuration of the section.
type layerVariant struct {
	Name   string
	What   string   // what is switched on, for the report
	Env    []string // EDGEPROXY_* overrides on top of the plain setup
	Token  bool     // requests carry the bench token; without it the answer must be 401
	Target float64  // issue target for req/s relative to plain; 0 = none
}

// layerVariants are the configurations measured, plain first.
func layerVariants(redisAddr string) []layerVariant {
	r := "EDGEPROXY_REDIS_ADDRS=" + redisAddr
	return []layerVariant{
		{Name: "plain", What: "no Redis, no limiter"},
		{Name: "token", What: "token auth from Redis (string record), statistics off", Token: true, Target: 0.90,
			Env: []string{r, "EDGEPROXY_PROXY_DOWNLOAD_AUTH=token", "EDGEPROXY_STATS_ENABLED=false"}},
		{Name: "limiter", What: "limiter on: concurrency caps of 100000 (Admit runs), no rate", Target: 0.95,
			Env: []string{"EDGEPROXY_LIMITER_MAX_CONCURRENT_PER_CLIENT=100000", "EDGEPROXY_LIMITER_MAX_CONCURRENT=100000"}},
		{Name: "stats", What: "statistics in Redis without the download log", Target: 0.95,
			Env: []string{r, "EDGEPROXY_STATS_DISABLE_LOG=true"}},
		{Name: "stats+log", What: "statistics in Redis with the download log", Target: 0.95,
			Env: []string{r}},
	}
}

// Row keys of the layers section; the "server" of a sample is the variant.
const (
	rowLayerRPS   = "layers: req/s"
	rowLayerCPU   = "layers: req per CPU-s"
	rowLayerRedis = "layers: redis CPU-s per server CPU-s"
)

// layerRun is one variant's running edgeproxy.
type layerRun struct {
	layerVariant
	srv *server
}

// runLayers starts Redis and one edgeproxy per variant, checks each answers
// correctly, then measures them with the hot 4 KiB wrk settings, the order
// rotating by round.
func runLayers(ctx context.Context, o options, w wrkRun, root, dir string, org *origin, res *results) error {
	logf("layers: starting redis-server")
	rs, err := startRedis(ctx, filepath.Join(dir, "redis"))
	if err != nil {
		return err
	}
	defer rs.stop()
	token, err := seedToken(ctx, rs.client, hot4K.Key)
	if err != nil {
		return err
	}

	var runs []*layerRun
	defer func() {
		for i := len(runs) - 1; i >= 0; i-- {
			runs[i].srv.stop()
		}
	}()
	for _, v := range layerVariants(rs.Addr) {
		logf("layers: starting edgeproxy %s", v.Name)
		env := append(append([]string{}, o.extraEnv...), v.Env...)
		s, err := startServer(ctx, "edgeproxy", root, filepath.Join(dir, v.Name), org, env)
		if err != nil {
			return err
		}
		s.Name = "edgeproxy " + v.Name
		runs = append(runs, &layerRun{layerVariant: v, srv: s})
		if err := verifyLayer(ctx, s, v.Token, token, org); err != nil {
			return err
		}
	}
	for _, lr := range runs {
		res.layers = append(res.layers, lr.layerVariant)
	}

	summary := filepath.Join(root, "bench", "wrk", "summary.lua")
	wrkFor := func(lr *layerRun) wrkRun {
		wv := w
		if lr.Token {
			wv.headers = []string{"Authorization: Bearer " + token}
		}
		return wv
	}
	// One unmeasured second each, so no variant's first measured run also
	// pays for its heap growing and its pools and caches filling.
	logf("layers: 1 s of warm-up per variant")
	for _, lr := range runs {
		wv := wrkFor(lr)
		wv.duration = time.Second
		if _, err := wv.run(ctx, summary, lr.srv.URL(hot4K.Key)); err != nil {
			return err
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, lr := range rotate(runs, round-1) {
			logf("round %d/%d: layers, hot 4 KiB on edgeproxy %s (%v)", round, o.rounds, lr.Name, o.duration)
			wv := wrkFor(lr)
			cpu0, redis0 := lr.srv.proc.cpuTime(), rs.proc.cpuTime()
			r, err := wv.run(ctx, summary, lr.srv.URL(hot4K.Key))
			if err != nil {
				return err
			}
			cpu := (lr.srv.proc.cpuTime() - cpu0).Seconds()
			redisCPU := (rs.proc.cpuTime() - redis0).Seconds()
			if p := r.problems(); p != "" {
				res.problem("edgeproxy %s, round %d, layers hot 4 KiB: %s", lr.Name, round, p)
			}
			res.add(rowLayerRPS, lr.Name, r.ReqPerSec())
			if cpu > 0 {
				res.add(rowLayerCPU, lr.Name, r.Requests/cpu)
				res.add(rowLayerRedis, lr.Name, redisCPU/cpu)
			}
		}
	}
	res.layerRedis = redisSummary(ctx, rs.client)
	return nil
}

// verifyLayer reads the 4 KiB object twice (the first fills the cache) and
// checks the second answer is 200 with the origin's bytes; with token auth
// it also checks that a request without the token gets 401.
func verifyLayer(ctx context.Context, s *server, useToken bool, token string, org *origin) error {
	want, err := org.read(ctx, hot4K.Key, 0, hot4K.Size)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: newTransport(1), Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	get := func(auth string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(hot4K.Key), nil)
		if err != nil {
			return 0, nil, err
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("harness: verify %s: %w", s.Name, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, hot4K.Size+1))
		return resp.StatusCode, b, err
	}
	auth := ""
	if useToken {
		auth = token
	}
	for range 2 {
		status, got, err := get(auth)
		if err != nil {
			return fmt.Errorf("harness: verify %s: %w", s.Name, err)
		}
		if status != http.StatusOK || !bytes.Equal(got, want) {
			return fmt.Errorf("harness: verify %s %s: status %d, %d bytes, equal to origin %v (want 200 and %d bytes):\n%s",
				s.Name, hot4K.Key, status, len(got), bytes.Equal(got, want), hot4K.Size, s.proc.LogTail())
		}
	}
	if useToken {
		status, _, err := get("")
		if err != nil {
			return fmt.Errorf("harness: verify %s without token: %w", s.Name, err)
		}
		if status != http.StatusUnauthorized {
			return fmt.Errorf("harness: verify %s %s without token: status %d, want 401", s.Name, hot4K.Key, status)
		}
	}
	return nil
}

// redisServer is a throwaway redis-server on a loopback port, without
// persistence, started by testenv as the tests start theirs.
type redisServer struct {
	*testenv.RedisServer
	proc   *proc // the server process, for its CPU time
	client *redis.Client
}

// startRedis runs redis-server with its working directory in dir.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	rs, err := testenv.StartRedis(ctx, dir)
	if err != nil {
		return nil, err
	}
	return &redisServer{RedisServer: rs, proc: &proc{rs.Proc}, client: testenv.NewRedisClient(rs.Addr)}, nil
}

func (rs *redisServer) stop() {
	rs.client.Close()
	rs.Close()
}

// seedToken stores a fresh download token for key in its string form, valid
// for an hour, and returns it.
func seedToken(ctx context.Context, c *redis.Client, key string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := c.Set(ctx, tokenKeyPrefix+tok, "file_id="+key+"&user_id=bench", time.Hour).Err(); err != nil {
		return "", fmt.Errorf("harness: seed token: %w", err)
	}
	return tok, nil
}

// redisSummary describes what the statistics variants left in Redis, so a
// reader can see that they did write (the log variant to download:log).
func redisSummary(ctx context.Context, c *redis.Client) string {
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		return fmt.Sprintf("redis after the runs: %v", err)
	}
	logLen, err := c.XLen(ctx, "download:log").Result()
	if err != nil {
		return fmt.Sprintf("redis after the runs: %d keys; download:log: %v", n, err)
	}
	return fmt.Sprintf("redis after the runs: %d keys, %d entries in download:log", n, logLen)
}

// layersMarkdown renders the access-layers section: medians per variant,
// their ratios to plain, the issue targets, and every round's samples.
func (r *results) layersMarkdown(b *strings.Builder) {
	if len(r.layers) == 0 {
		return
	}
	o := r.opts
	fmt.Fprintf(b, "\n## Access layers: edgeproxy alone, hot 4 KiB object\n\n")
	fmt.Fprintf(b, "Same wrk settings as the hot 4 KiB row (-t%d -c%d, %v), one edgeproxy per variant (the edgeproxy setup below plus the variant's overrides, after 1 s of unmeasured warm-up), the order rotating each round, median of %d round(s). "+
		"Ratios are the variant's median over plain's; the target applies to the req/s ratio. "+
		"redis-server shares the CPUs with the proxy and wrk; its CPU is not in the proxy's CPU-s and is shown on its own.\n\n",
		o.threads, o.conns, o.duration, o.rounds)
	fmt.Fprintf(b, "| variant | req/s | req per server CPU-s | ratio to plain | per CPU-s ratio to plain | redis CPU-s per server CPU-s | target |\n")
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---|\n")
	plainRPS, okRPS := r.median(rowLayerRPS, "plain")
	plainCPU, okCPU := r.median(rowLayerCPU, "plain")
	ratio := func(v, base float64, ok bool) (float64, string) {
		if !ok || base == 0 {
			return 0, "-"
		}
		return v / base, fmt.Sprintf("%.2f", v/base)
	}
	cell := func(row, name, format string) (float64, bool, string) {
		v, ok := r.median(row, name)
		if !ok {
			return 0, false, "-"
		}
		return v, true, fmt.Sprintf(format, v)
	}
	for _, v := range r.layers {
		rps, hasRPS, rpsS := cell(rowLayerRPS, v.Name, "%.0f")
		cpu, hasCPU, cpuS := cell(rowLayerCPU, v.Name, "%.0f")
		_, _, redisS := cell(rowLayerRedis, v.Name, "%.2f")
		q, qS := ratio(rps, plainRPS, okRPS && hasRPS)
		_, qcS := ratio(cpu, plainCPU, okCPU && hasCPU)
		target := "-"
		if v.Target > 0 {
			verdict := "not met"
			if qS != "-" && q >= v.Target {
				verdict = "met"
			}
			target = fmt.Sprintf(">= %.2f: %s", v.Target, verdict)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", v.Name, rpsS, cpuS, qS, qcS, redisS, target)
	}
	fmt.Fprintf(b, "\n")
	for _, v := range r.layers {
		fmt.Fprintf(b, "- **%s**: %s", v.Name, v.What)
		if len(v.Env) > 0 {
			fmt.Fprintf(b, " (`%s`)", strings.Join(trimPrefixes(v.Env, "EDGEPROXY_"), " "))
		}
		fmt.Fprintf(b, "\n")
	}
	if r.layerRedis != "" {
		fmt.Fprintf(b, "\n%s.\n", r.layerRedis)
	}
	if o.rounds > 1 {
		fmt.Fprintf(b, "\nEvery round, req/s (req per server CPU-s):\n\n")
		for _, v := range r.layers {
			var vs []string
			cpus := r.samples[rowLayerCPU][v.Name]
			for i, x := range r.samples[rowLayerRPS][v.Name] {
				s := fmt.Sprintf("%.0f", x)
				if i < len(cpus) {
					s += fmt.Sprintf(" (%.0f)", cpus[i])
				}
				vs = append(vs, s)
			}
			fmt.Fprintf(b, "- %s: %s\n", v.Name, strings.Join(vs, " / "))
		}
	}
}
