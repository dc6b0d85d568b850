// Command harness benchmarks edgeproxy beside a tuned nginx cache and
// Varnish, all reading the same MinIO through byte-counting relays, and
// prints one Markdown table of medians (also written to
// bench/results/latest.md).
//
//	go run ./bench/harness            # 3 rounds x 10 s per scenario and server
//	go run ./bench/harness -quick     # 1 round x 2 s: does everything still work?
//	go run ./bench/harness -slow      # RSS with 400 slow clients, then 10k idle + 1k slow connections
//	go run ./bench/harness -offload   # origin offload: hit ratios on traces (offload.go)
//	go run ./bench/harness -upload    # RSS with 20 concurrent 1 GiB tus uploads (upload.go)
//
// It starts everything it measures on loopback ports with data in a
// temporary directory, and stops and removes all of it on exit, Ctrl-C or
// error. See bench/README.md for what each scenario measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	duration    time.Duration
	rounds      int
	threads     int
	conns       int
	coldClients int
	servers     []string
	out         string
	keep        bool
	timeout     time.Duration
	extraEnv    []string
	layers      bool // run the access-layers section (edgeproxy alone)
	disk        bool // run the disk-tier section (a second edgeproxy, beside nginx)
	// getBench runs only the edgectl get vs aria2c comparison (get.go).
	getBench     bool
	get          getOptions
	offload      bool // run only the origin-offload section
	offloadSize  int64
	offloadTrace string // a recorded trace to replay too
	// slowBench runs only the slow-client memory section (slow.go).
	slowBench bool
	slow      slowOptions
	// uploadBench runs only the concurrent-upload memory section (upload.go).
	uploadBench bool
	upload      uploadOptions
}

func main() {
	var o options
	var quick bool
	var servers string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each wrk run (whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario; the table shows the median")
	flag.BoolVar(&quick, "quick", false, "sanity run: -duration 2s -rounds 1")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (same for every server)")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections (same for every server)")
	flag.IntVar(&o.coldClients, "cold-clients", 32, "concurrent clients of the cold-miss scenario")
	flag.StringVar(&servers, "servers", strings.Join(serverNames, ","), "servers to run, comma-separated")
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "where to write the table (relative to the repository root)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, configs) for inspection")
	flag.BoolVar(&o.layers, "layers", true, "also measure edgeproxy's access layers (token auth, limiter, statistics) against plain edgeproxy")
	flag.BoolVar(&o.disk, "disk", true, "also measure edgeproxy's disk tier (memory tier "+diskMemory+", objects warmed onto disk) beside nginx")
	flag.DurationVar(&o.timeout, "timeout", 45*time.Minute, "upper bound of the whole run")
	flag.BoolVar(&o.getBench, "get", false, "only compare edgectl get -c N with aria2c -xN -sN on one object through edgeproxy (-rounds rounds, alternating)")
	flag.IntVar(&o.get.conns, "get-conns", 8, "connections of both clients in -get")
	getMiB := flag.Int64("get-mib", 1024, "object size in MiB for -get")
	flag.BoolVar(&o.slowBench, "slow", false, "only measure edgeproxy's RSS with slow clients on the disk tier (slow.go)")
	flag.DurationVar(&o.slow.duration, "slow-duration", 20*time.Second, "how long slow clients read in each -slow phase")
	flag.IntVar(&o.slow.clients, "slow-clients", 400, "slow clients of the first -slow phase")
	flag.IntVar(&o.slow.idle, "slow-idle", 10000, "idle keep-alive connections of the second -slow phase")
	flag.IntVar(&o.slow.downs, "slow-downloads", 1000, "slow downloads of the second -slow phase")
	flag.IntVar(&o.slow.rate, "slow-rate", 10<<10, "bytes per second each -slow client reads")
	flag.BoolVar(&o.uploadBench, "upload", false, "only measure edgeproxy's RSS with concurrent tus uploads streamed through it (upload.go)")
	flag.IntVar(&o.upload.uploads, "upload-count", 20, "concurrent uploads of -upload")
	uploadMiB := flag.Int64("upload-mib", 1024, "size of each -upload upload in MiB (less when the disk cannot hold them all)")
	flag.BoolVar(&o.offload, "offload", false, "run only the origin-offload section: traces replayed through edgeproxy (tinylfu and lru) and nginx, hit ratios beside LRU and Belady")
	flag.Int64Var(&o.offloadSize, "offload-size", 256<<10, "object size of the offload traces, in bytes")
	flag.StringVar(&o.offloadTrace, "offload-trace", "", "also replay this recorded trace in -offload: one object name per line")
	flag.Func("edgeproxy-env", "extra KEY=VALUE for edgeproxy, e.g. EDGEPROXY_CACHE_CHUNK_SIZE=4MiB (repeatable)", func(v string) error {
		if !strings.HasPrefix(v, "EDGEPROXY_") || !strings.Contains(v, "=") {
			return errors.New("want EDGEPROXY_KEY=VALUE")
		}
		o.extraEnv = append(o.extraEnv, v)
		return nil
	})
	flag.Parse()
	// A section run alone writes its own file unless -out is given; the
	// order is that of the dispatch below.
	outSet := false
	flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if !outSet {
		switch {
		case o.getBench:
			o.out = "bench/results/get.md"
		case o.slowBench:
			o.out = "bench/results/slow.md"
		case o.uploadBench:
			o.out = "bench/results/upload.md"
		case o.offload:
			o.out = "bench/results/offload.md"
		}
	}
	if quick {
		o.duration, o.rounds = 2*time.Second, 1
	}
	o.get.size = *getMiB << 20
	o.upload.size = *uploadMiB << 20
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.servers = append(o.servers, s)
		}
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	var err error
	switch {
	case o.getBench:
		err = runGetBench(ctx, o)
	case o.slowBench:
		err = runSlowBench(ctx, o)
	case o.uploadBench:
		err = runUploadBench(ctx, o)
	default:
		err = run(ctx, o)
	}
	interrupted := ctx.Err() != nil
	cancel()
	stop()
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "harness: ") {
			msg = "harness: " + msg
		}
		if interrupted {
			msg += "\nharness: interrupted or out of time; stopped everything it started"
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func (o options) validate() error {
	if o.offloadSize < 1<<10 || o.offloadSize > 1<<20 {
		return errors.New("need 1KiB <= -offload-size <= 1MiB (one chunk, one nginx slice)")
	}
	if o.duration < time.Second || o.rounds < 1 || o.threads < 1 || o.conns < o.threads || o.coldClients < 1 {
		return errors.New("need -duration >= 1s, -rounds >= 1, -threads >= 1, -conns >= -threads, -cold-clients >= 1")
	}
	if o.get.conns < 1 || o.get.conns > 16 || o.get.size < 1 {
		return errors.New("need -get-conns between 1 and 16 (aria2c's limit) and -get-mib >= 1")
	}
	if o.slow.duration < time.Second || o.slow.clients < 1 || o.slow.idle < 0 || o.slow.downs < 1 || o.slow.rate < 64 {
		return errors.New("need -slow-duration >= 1s, -slow-clients >= 1, -slow-idle >= 0, -slow-downloads >= 1, -slow-rate >= 64")
	}
	if o.upload.uploads < 1 || o.upload.size < 64<<20 {
		return errors.New("need -upload-count >= 1 and -upload-mib >= 64")
	}
	if len(o.servers) == 0 {
		return errors.New("-servers is empty")
	}
	for _, s := range o.servers {
		known := false
		for _, n := range serverNames {
			known = known || s == n
		}
		if !known {
			return fmt.Errorf("-servers: unknown server %q (have %v)", s, serverNames)
		}
	}
	return nil
}

// runDisk reports whether the disk-tier section runs: asked for, and
// edgeproxy among the servers.
func (o options) runDisk() bool {
	return o.disk && slices.Contains(o.servers, "edgeproxy")
}

// runLayers reports whether the access-layers section runs: asked for,
// and edgeproxy among the servers.
func (o options) runLayers() bool {
	return o.layers && slices.Contains(o.servers, "edgeproxy")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s harness: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run does the whole benchmark; every deferred stop runs on return, also
// when ctx is cancelled by Ctrl-C.
func run(ctx context.Context, o options) error {
	need := tools
	if o.runLayers() {
		need = append(append([]tool{}, tools...), redisTool)
	}
	root, tmp, done, err := prepare(ctx, o, "edgeproxy-bench-", need)
	if err != nil {
		return err
	}
	defer done()
	wrkBin, err := toolPath("wrk")
	if err != nil {
		return err
	}
	// nginx workers and the Varnish cache child may run as other users.
	os.Chmod(tmp, 0o755)

	logf("starting MinIO")
	org, err := startOrigin(ctx, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer org.Close()
	if o.offload {
		report, err := runOffload(ctx, o, root, tmp, org)
		if err != nil {
			return err
		}
		return writeReport(root, o.out, fmt.Sprintf("# edgeproxy origin offload\n\n%s, commit %s, load average %s.\n\n%s",
			time.Now().Format("2006-01-02 15:04 MST"), gitCommit(ctx, root), loadAverage(), report))
	}
	objs := []object{hot4K, hot1M, hot256M}
	hot := append([]object{}, objs...)
	if o.runDisk() {
		objs = append(objs, diskObjects()...)
	}
	for r := 1; r <= o.rounds; r++ {
		for _, name := range o.servers {
			objs = append(objs, coldObject(name, r))
		}
	}
	logf("seeding %d objects", len(objs))
	if err := org.seed(ctx, objs); err != nil {
		return err
	}

	var servers []*server
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].stop()
		}
	}()
	for _, name := range o.servers {
		logf("starting %s", name)
		s, err := startServer(ctx, name, root, filepath.Join(tmp, name), org, o.extraEnv)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		logf("warming %s", s.Name)
		if err := warm(ctx, s, hot); err != nil {
			return err
		}
		if err := verify(ctx, s, org); err != nil {
			return err
		}
	}

	res := newResults(o, servers)
	res.versions = versions(ctx)
	res.loadStart = loadAverage()
	w := wrkRun{bin: wrkBin, threads: o.threads, conns: o.conns, duration: o.duration}
	if err := runHot(ctx, o, w, root, servers, res); err != nil {
		return err
	}
	if err := runCold(ctx, o, servers, res); err != nil {
		return err
	}
	for _, s := range servers {
		m, err := s.proc.treeMemory()
		if err != nil {
			return err
		}
		res.add(rowRSS, s.Name, float64(m.RSS))
		res.add(rowHWM, s.Name, float64(m.HWM))
	}
	if o.runDisk() {
		if err := runDisk(ctx, o, w, root, filepath.Join(tmp, "disk"), org, servers, res); err != nil {
			return err
		}
	}
	if o.runLayers() {
		if err := runLayers(ctx, o, w, root, filepath.Join(tmp, "layers"), org, res); err != nil {
			return err
		}
	}

	res.loadEnd = loadAverage()
	return writeReport(root, o.out, res.markdown(gitCommit(ctx, root)))
}

// writeReport prints report and writes it to out (relative to root).
func writeReport(root, out, report string) error {
	fmt.Println(report)
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return err
	}
	logf("wrote %s", out)
	return nil
}

// runHot measures the three cache-hit scenarios. Each round runs every
// scenario on every server, the server order rotating by round so no
// server always runs first (or right after the same neighbour).
func runHot(ctx context.Context, o options, w wrkRun, root string, servers []*server, res *results) error {
	summary := filepath.Join(root, "bench", "wrk", "summary.lua")
	rangeScript := filepath.Join(root, "bench", "wrk", "range.lua")
	type scenario struct {
		row, cpuRow string
		run         func(*server) (wrkResult, error)
		pick        func(wrkResult) float64
	}
	scenarios := []scenario{
		{rowHot4K, rowHot4KCPU, func(s *server) (wrkResult, error) {
			return w.run(ctx, summary, s.URL(hot4K.Key))
		}, wrkResult.ReqPerSec},
		{rowHot1M, rowHot1MCPU, func(s *server) (wrkResult, error) {
			return w.run(ctx, summary, s.URL(hot1M.Key))
		}, wrkResult.BytesPerSec},
		{rowRange, rowRangeCPU, func(s *server) (wrkResult, error) {
			return w.run(ctx, rangeScript, s.URL(hot256M.Key), fmt.Sprint(hot256M.Size), fmt.Sprint(64<<10))
		}, wrkResult.ReqPerSec},
	}
	before := map[string]int64{}
	for _, s := range servers {
		before[s.Name] = s.relay.Bytes()
	}
	for round := 1; round <= o.rounds; round++ {
		for _, sc := range scenarios {
			for _, s := range rotate(servers, round-1) {
				logf("round %d/%d: %s on %s (%v)", round, o.rounds, sc.row, s.Name, o.duration)
				cpu0 := s.proc.cpuTime()
				r, err := sc.run(s)
				if err != nil {
					return err
				}
				cpu := (s.proc.cpuTime() - cpu0).Seconds()
				if p := r.problems(); p != "" {
					res.problem("%s, round %d, %s: %s", s.Name, round, sc.row, p)
				}
				res.add(sc.row, s.Name, sc.pick(r))
				if cpu > 0 {
					// Work per CPU second: the rate times the run's length, over its CPU time.
					res.add(sc.cpuRow, s.Name, sc.pick(r)*r.DurationUS/1e6/cpu)
				}
			}
		}
	}
	for _, s := range servers {
		res.add(rowHotOrigin, s.Name, float64(s.relay.Bytes()-before[s.Name]))
	}
	return nil
}

// runCold measures the cold miss: each server reads its own never-read
// object per round, so every run starts cold without purging anything.
func runCold(ctx context.Context, o options, servers []*server, res *results) error {
	for round := 1; round <= o.rounds; round++ {
		for _, s := range rotate(servers, round-1) {
			obj := coldObject(s.Name, round)
			logf("round %d/%d: cold miss, %d clients x %s on %s", round, o.rounds, o.coldClients, obj.Key, s.Name)
			settle(ctx, s.relay, time.Second, 20*time.Second)
			cpu0 := s.proc.cpuTime()
			r, err := coldMiss(ctx, s, obj, o.coldClients)
			if err != nil {
				return err
			}
			res.add(rowColdCPU, s.Name, (s.proc.cpuTime() - cpu0).Seconds())
			res.add(rowColdTime, s.Name, r.Elapsed.Seconds())
			res.add(rowColdOrigin, s.Name, float64(r.OriginBytes)/float64(obj.Size))
		}
	}
	return ctx.Err()
}

func rotate[T any](s []T, k int) []T {
	k %= len(s)
	return append(append([]T{}, s[k:]...), s[:k]...)
}

// loadAverage is the first three fields of /proc/loadavg: how busy the
// machine was (other people's work included), for the report header.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// repoRoot finds the edgeproxy module root from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/edgeproxy/edgeproxy\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("run inside the edgeproxy repository (go.mod of github.com/edgeproxy/edgeproxy not found)")
}

// gitCommit describes the checked-out tree, for the report header.
func gitCommit(ctx context.Context, root string) string {
	out, err := runCmd(ctx, 10*time.Second, root, nil, "git", "rev-parse", "--short", "HEAD")
	if err != nil {
		return "no commit"
	}
	return strings.TrimSpace(out)
}

// prepare readies a run: it finds the repository root, installs the tools
// in need and MinIO, and makes the work directory (workDir) that done
// deletes or keeps.
func prepare(ctx context.Context, o options, prefix string, need []tool) (root, tmp string, done func(), err error) {
	if root, err = repoRoot(); err != nil {
		return "", "", nil, err
	}
	if err := ensureTools(ctx, need); err != nil {
		return "", "", nil, err
	}
	if err := ensureMinIO(ctx, root); err != nil {
		return "", "", nil, err
	}
	tmp, done, err = workDir(o, prefix)
	if err != nil {
		return "", "", nil, err
	}
	return root, tmp, done, nil
}

// workDir makes a run's temporary directory; done deletes it, or with
// -keep logs where it was kept.
func workDir(o options, prefix string) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if o.keep {
		return dir, func() { logf("kept %s", dir) }, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
