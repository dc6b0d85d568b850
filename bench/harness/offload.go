package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/cache/policysim"
)

// The origin-offload section (-offload): replay request traces through
// edgeproxy under each disk policy and through nginx, each cache given room
// for offloadCapacity objects, and report the share of requests served
// without the origin beside LRU and Belady computed on the same trace
// (cache/policysim). All objects of a run have one size, so a request hit
// ratio is a byte hit ratio.
//
// A request is a hit when the server's relay saw less than half the
// object's bytes come from the origin while it was served; requests are
// sent one at a time, so each origin transfer belongs to one request, and
// edgeproxy's metadata requests (a few hundred bytes) do not count as
// misses.

// offloadCapacity is the number of objects each cache may hold: the disk
// of edgeproxy and nginx's max_size. edgeproxy also has a memory tier of a
// quarter of that (16 MiB beside 64 MiB in issue 15's setup), mostly a
// copy of the hottest chunks on disk.
const offloadCapacity = 64

// offloadScenario is one trace and the windows of it that are reported.
type offloadScenario struct {
	name    string
	trace   policysim.Trace
	windows []offloadWindow
}

// offloadWindow is a range of requests [from, to), restricted to the
// objects keep accepts (nil: all).
type offloadWindow struct {
	label    string
	from, to int
	keep     func(obj int) bool
}

// offloadScenarios are issue 15's traces: Zipf popularity with three skews
// (a warm-up pass, then the same requests measured), a hot set under a
// one-off scan through ten times the cache, and a popularity that moves
// to new objects at once.
func offloadScenarios() []offloadScenario {
	var out []offloadScenario
	for _, skew := range []float64{0.7, 0.9, 1.1} {
		out = append(out, offloadScenario{
			name:    fmt.Sprintf("Zipf(%.1f), 400 objects, 4000 requests twice", skew),
			trace:   policysim.Repeat(policysim.Zipf(1, 400, skew, 4000)),
			windows: []offloadWindow{{"second pass", 4000, 8000, nil}},
		})
	}
	const hot = 48
	scan, end := policysim.Scan(3, hot, 2000, 10*offloadCapacity, 2000)
	isHot := func(k int) bool { return k < hot }
	out = append(out, offloadScenario{
		name:  fmt.Sprintf("hot set of %d, then a one-off scan of %d objects", hot, 10*offloadCapacity),
		trace: scan,
		windows: []offloadWindow{
			{"hot set before the scan", 1000, 2000, isHot},
			{"hot set during the scan", 2000, end, isHot},
			{"hot set after the scan", end, len(scan), isHot},
		},
	})
	out = append(out, offloadScenario{
		name:  "Zipf(0.9) over 400 objects, then over 400 others",
		trace: policysim.Shift(4, 400, 0.9, 8000),
		windows: []offloadWindow{
			{"before the shift", 2000, 4000, nil},
			{"0-500 after", 4000, 4500, nil},
			{"500-1000 after", 4500, 5000, nil},
			{"1000-2000 after", 5000, 6000, nil},
			{"2000-4000 after", 6000, 8000, nil},
		},
	})
	return out
}

// recordedScenario reads a recorded trace: one object name per line (blank
// lines and lines starting with # are skipped). Each distinct name becomes
// an object numbered from first on, all of one size: the trace keeps the
// order and repetition of the requests, not their sizes. The first half
// warms the caches; the second half is measured.
func recordedScenario(path string, first int) (offloadScenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return offloadScenario{}, fmt.Errorf("harness: -offload-trace: %w", err)
	}
	ids := map[string]int{}
	var trace policysim.Trace
	for _, line := range strings.Split(string(b), "\n") {
		name := strings.TrimSpace(line)
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		id, ok := ids[name]
		if !ok {
			id = first + len(ids)
			ids[name] = id
		}
		trace = append(trace, id)
	}
	if len(trace) < 2 {
		return offloadScenario{}, fmt.Errorf("harness: -offload-trace %s: fewer than 2 requests", path)
	}
	return offloadScenario{
		name:    fmt.Sprintf("recorded %s, %d objects", filepath.Base(path), len(ids)),
		trace:   trace,
		windows: []offloadWindow{{"second half", len(trace) / 2, len(trace), nil}},
	}, nil
}

// offloadVariant is one cache under test in this section.
type offloadVariant struct {
	name  string
	start func(ctx context.Context, s *server, dir string) error
}

func offloadVariants(o options, root string, org *origin) []offloadVariant {
	size := o.offloadSize
	edge := func(policy string) func(ctx context.Context, s *server, dir string) error {
		return func(ctx context.Context, s *server, dir string) error {
			// Each chunk file carries a header of about 100 bytes here.
			env := append(append([]string{}, o.extraEnv...),
				"EDGEPROXY_CACHE_MEMORY_BYTES="+strconv.FormatInt(offloadCapacity/4*size, 10),
				"EDGEPROXY_CACHE_DISK_BYTES="+strconv.FormatInt(offloadCapacity*(size+512), 10),
				"EDGEPROXY_CACHE_POLICY="+policy)
			return s.startEdgeproxy(ctx, root, dir, org, env)
		}
	}
	var out []offloadVariant
	for _, name := range o.servers {
		switch name {
		case "edgeproxy":
			out = append(out, offloadVariant{"edgeproxy tinylfu", edge("tinylfu")}, offloadVariant{"edgeproxy lru", edge("lru")})
		case "nginx":
			out = append(out, offloadVariant{"nginx", func(ctx context.Context, s *server, dir string) error {
				// nginx counts whole file-system blocks and a header of
				// about 600 bytes per file.
				return s.startNginxSized(ctx, dir, strconv.FormatInt(offloadCapacity*(size+4<<10)/1024, 10)+"k")
			}})
		}
	}
	return out
}

// offloadRun is one trace replayed through one cache.
type offloadRun struct {
	hit                  []bool
	heldMax, heldMean    int64 // bytes of the cache directory, sampled
	originBytes, elapsed int64
	notes                string
}

// runOffload seeds the objects, then for each scenario and variant starts
// a fresh server, replays the trace and stops it. It returns the section's
// Markdown.
func runOffload(ctx context.Context, o options, root, tmp string, org *origin) (string, error) {
	scenarios := offloadScenarios()
	maxObj := 0
	for _, sc := range scenarios {
		for _, k := range sc.trace {
			maxObj = max(maxObj, k)
		}
	}
	if o.offloadTrace != "" {
		sc, err := recordedScenario(o.offloadTrace, maxObj+1)
		if err != nil {
			return "", err
		}
		scenarios = append(scenarios, sc)
		for _, k := range sc.trace {
			maxObj = max(maxObj, k)
		}
	}
	objs := make([]object, maxObj+1)
	for i := range objs {
		objs[i] = offloadObject(i, o.offloadSize)
	}
	logf("seeding %d objects of %d KiB", len(objs), o.offloadSize>>10)
	if err := org.seed(ctx, objs); err != nil {
		return "", err
	}
	variants := offloadVariants(o, root, org)
	if len(variants) == 0 {
		return "", fmt.Errorf("harness: -offload needs edgeproxy or nginx among -servers")
	}
	runs := make([][]offloadRun, len(scenarios))
	for i, sc := range scenarios {
		for j, v := range variants {
			dir := filepath.Join(tmp, fmt.Sprintf("offload-%d-%d", i, j))
			logf("offload: %s through %s (%d requests)", sc.name, v.name, len(sc.trace))
			r, err := replayOffload(ctx, v, dir, org, sc.trace, o.offloadSize)
			if err != nil {
				return "", err
			}
			runs[i] = append(runs[i], r)
		}
	}
	return offloadMarkdown(o, scenarios, variants, runs), nil
}

// offloadObject is object i of the offload traces.
func offloadObject(i int, size int64) object {
	return object{fmt.Sprintf("offload-%d", i), size}
}

// replayOffload starts a fresh server of variant v, sends the trace one
// request at a time and stops the server.
func replayOffload(ctx context.Context, v offloadVariant, dir string, org *origin, trace policysim.Trace, size int64) (offloadRun, error) {
	s, err := newServer(v.name, dir, org)
	if err != nil {
		return offloadRun{}, err
	}
	defer s.stop()
	r := s.relay
	if err := v.start(ctx, s, dir); err != nil {
		return offloadRun{}, err
	}

	// Sample the bytes the cache holds on disk while the trace runs.
	var heldMax, sum, n int64
	stopSampling := sampleEvery(250*time.Millisecond, func() {
		b := dirBytes(dir)
		heldMax, sum, n = max(heldMax, b), sum+b, n+1
	})
	defer stopSampling()

	hc := &http.Client{Transport: newTransport(1), Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	run := offloadRun{hit: make([]bool, len(trace))}
	start, origin0 := time.Now(), r.Bytes()
	for i, k := range trace {
		if ctx.Err() != nil {
			return run, ctx.Err()
		}
		obj := offloadObject(k, size)
		before := r.Bytes()
		status, got, err := drain(ctx, hc, s.URL(obj.Key))
		if err == nil && (status != http.StatusOK || got != size) {
			err = fmt.Errorf("status %d, %d bytes, want 200 and %d", status, got, size)
		}
		if err != nil {
			return run, fmt.Errorf("harness: offload %s request %d (%s): %w", v.name, i, obj.Key, err)
		}
		run.hit[i] = r.Bytes()-before < size/2
	}
	run.elapsed = int64(time.Since(start))
	run.originBytes = r.Bytes() - origin0
	stopSampling()
	b := dirBytes(dir)
	run.heldMax, run.heldMean = max(heldMax, b), (sum+b)/(n+1)
	run.notes = strings.Join(s.notes, "; ")
	return run, nil
}

// dirBytes sums the sizes of the regular files under dir that belong to a
// cache (not logs or configs): nginx's cache/ and edgeproxy's cache/.
func dirBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(filepath.Join(dir, "cache"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// ratio is the hit ratio of hits over a window of trace.
func (w offloadWindow) ratio(trace policysim.Trace, hit []bool) float64 {
	n, h := 0, 0
	for i := w.from; i < w.to && i < len(trace); i++ {
		if w.keep != nil && !w.keep(trace[i]) {
			continue
		}
		n++
		if hit[i] {
			h++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(h) / float64(n)
}

// offloadMarkdown renders the section: per scenario and window, the
// simulated LRU and Belady and each cache's measured hit ratio, then what
// each cache held.
func offloadMarkdown(o options, scenarios []offloadScenario, variants []offloadVariant, runs [][]offloadRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Origin offload\n\n")
	fmt.Fprintf(&b, "Objects of %d KiB, room for %d of them (edgeproxy: disk for %d and memory for %d; nginx: max_size for %d), "+
		"one request at a time, a fresh server per trace. Share of requests (= of bytes) served without the origin; "+
		"LRU and Belady are simulated on the same trace with room for %d (cache/policysim).\n\n",
		o.offloadSize>>10, offloadCapacity, offloadCapacity, offloadCapacity/4, offloadCapacity, offloadCapacity)
	nginx := slices.IndexFunc(variants, func(v offloadVariant) bool { return v.name == "nginx" })
	fmt.Fprintf(&b, "| trace | requests | LRU (sim) | Belady (sim) |")
	for _, v := range variants {
		fmt.Fprintf(&b, " %s |", v.name)
	}
	if nginx >= 0 {
		fmt.Fprintf(&b, " LRU (sim) with nginx's mean holding |")
	}
	fmt.Fprintf(&b, "\n|---|---|---:|---:|")
	for range variants {
		fmt.Fprintf(&b, "---:|")
	}
	if nginx >= 0 {
		fmt.Fprintf(&b, "---:|")
	}
	fmt.Fprintln(&b)
	for i, sc := range scenarios {
		lru := policysim.LRU(sc.trace, offloadCapacity, 0)
		opt := policysim.Belady(sc.trace, offloadCapacity, 0)
		var held policysim.Result
		if nginx >= 0 {
			// nginx stores a header and rounds to 4 KiB blocks per file.
			held = policysim.LRU(sc.trace, max(int(runs[i][nginx].heldMean/(o.offloadSize+4<<10)), 1), 0)
		}
		for _, w := range sc.windows {
			fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f |", sc.name, w.label, w.ratio(sc.trace, lru.Hit), w.ratio(sc.trace, opt.Hit))
			for j := range variants {
				fmt.Fprintf(&b, " %.3f |", w.ratio(sc.trace, runs[i][j].hit))
			}
			if nginx >= 0 {
				fmt.Fprintf(&b, " %.3f |", w.ratio(sc.trace, held.Hit))
			}
			fmt.Fprintln(&b)
		}
	}
	fmt.Fprintf(&b, "\nWhat each cache held on disk (MiB, mean / max of samples every 250 ms; the budget is %.1f MiB; "+
		"nginx enforces max_size from its cache manager, which wakes every 10 s at most, so over these short runs it holds "+
		"more than its budget and its hit ratios are those of a larger cache: compare it with the last column of the table above, "+
		"LRU simulated with room for what nginx held on average):\n\n", float64(offloadCapacity*o.offloadSize)/(1<<20))
	variantTable(&b, scenarios, variants, runs, func(r offloadRun) string {
		return fmt.Sprintf("%.1f / %.1f", float64(r.heldMean)/(1<<20), float64(r.heldMax)/(1<<20))
	})
	fmt.Fprintf(&b, "\nOrigin MiB read per trace (all requests, warm-up included):\n\n")
	variantTable(&b, scenarios, variants, runs, func(r offloadRun) string {
		return fmt.Sprintf("%.0f", float64(r.originBytes)/(1<<20))
	})
	if len(runs) > 0 {
		fmt.Fprintf(&b, "\nSetups:\n\n")
		for j, v := range variants {
			fmt.Fprintf(&b, "- **%s**: %s\n", v.name, runs[0][j].notes)
		}
	}
	return b.String()
}

// variantTable writes a table with a row per trace and a column per
// variant, each cell cell(run).
func variantTable(b *strings.Builder, scenarios []offloadScenario, variants []offloadVariant, runs [][]offloadRun, cell func(offloadRun) string) {
	fmt.Fprintf(b, "| trace |")
	for _, v := range variants {
		fmt.Fprintf(b, " %s |", v.name)
	}
	fmt.Fprintf(b, "\n|---|")
	for range variants {
		fmt.Fprintf(b, "---:|")
	}
	fmt.Fprintln(b)
	for i, sc := range scenarios {
		fmt.Fprintf(b, "| %s |", sc.name)
		for j := range variants {
			fmt.Fprintf(b, " %s |", cell(runs[i][j]))
		}
		fmt.Fprintln(b)
	}
}
