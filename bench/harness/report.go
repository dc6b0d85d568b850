package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

// Row keys of the table, in display order below.
const (
	rowHot4K      = "hot 4 KiB"
	rowHot4KCPU   = "hot 4 KiB per CPU-s"
	rowHot1M      = "hot 1 MiB"
	rowHot1MCPU   = "hot 1 MiB per CPU-s"
	rowRange      = "random 64 KiB ranges"
	rowRangeCPU   = "ranges per CPU-s"
	rowColdTime   = "cold miss time"
	rowColdCPU    = "cold miss CPU"
	rowColdOrigin = "cold miss origin bytes"
	rowHotOrigin  = "origin bytes during hot runs"
	rowRSS        = "RSS"
	rowHWM        = "peak RSS"
)

// rowDef says how a row is labelled and printed.
type rowDef struct {
	key    string
	label  string // %d is replaced by the number of cold clients where present
	format func(float64) string
}

var rowDefs = []rowDef{
	{rowHot4K, "hot 4 KiB object: req/s (higher is better)", fmtFloat(0, 1)},
	{rowHot4KCPU, "... requests per server CPU-second (higher is better)", fmtFloat(0, 1)},
	{rowHot1M, "hot 1 MiB object: MiB/s (wrk Transfer/sec; higher is better)", fmtFloat(0, 1<<20)},
	{rowHot1MCPU, "... MiB per server CPU-second (higher is better)", fmtFloat(0, 1<<20)},
	{rowRange, "random 64 KiB ranges of hot 256 MiB: req/s (higher is better)", fmtFloat(0, 1)},
	{rowRangeCPU, "... requests per server CPU-second (higher is better)", fmtFloat(0, 1)},
	{rowDiskRange, "disk tier (edgeproxy: " + diskMemory + " memory): random 64 KiB ranges of 256 MiB: req/s (higher is better)", fmtFloat(0, 1)},
	{rowDiskRangeCPU, "... requests per server CPU-second (higher is better)", fmtFloat(0, 1)},
	{rowDisk1M, "disk tier: 96 x 1 MiB objects in random order: MiB/s (higher is better)", fmtFloat(0, 1<<20)},
	{rowDiskSeq, "disk tier: sequential 256 MiB, one download per wrk thread: MiB/s (higher is better)", fmtFloat(0, 1<<20)},
	{rowDiskOrigin, "disk tier: origin MiB read during the disk runs (0 = all hits)", fmtFloat(1, 1<<20)},
	{rowDiskRSS, "disk tier: RSS of the disk edgeproxy after its runs: MiB", fmtFloat(0, 1<<20)},
	{rowDiskRSSFile, "... of which file-backed (executable, mapped chunk files: page cache): MiB", fmtFloat(0, 1<<20)},
	{rowColdTime, "cold miss, %d clients x 256 MiB: seconds until all done (lower is better)", fmtFloat(2, 1)},
	{rowColdCPU, "... server CPU-seconds used (lower is better)", fmtFloat(2, 1)},
	{rowColdOrigin, "cold miss: origin bytes / object size (1.00 = fetched once; lower is better)", fmtFloat(2, 1)},
	{rowHotOrigin, "origin MiB read during all hot runs (0 = all hits)", fmtFloat(1, 1<<20)},
	{rowRSS, "RSS after the runs: MiB, VmRSS summed over processes", fmtFloat(0, 1<<20)},
	{rowHWM, "peak RSS: MiB, VmHWM summed over processes", fmtFloat(0, 1<<20)},
}

// mib formats a byte count as whole MiB for the report tables.
func mib(v int64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }

func fmtFloat(prec int, unit float64) func(float64) string {
	return func(v float64) string { return fmt.Sprintf("%.*f", prec, v/unit) }
}

// results holds every sample by row and server.
type results struct {
	opts     options
	servers  []*server
	samples  map[string]map[string][]float64
	problems []string
	start    time.Time
	versions string // of nginx, Varnish and wrk

	layers    []layerVariant // the access-layers section, plain first; empty when skipped
	diskNotes []string       // the disk edgeproxy's setup; empty when the section was skipped
	// diskVarnishNotes is the setup of the file-storage Varnish of the disk
	// rows; empty when it did not run.
	diskVarnishNotes []string
	layerRedis       string // what the statistics variants left in Redis

	loadStart, loadEnd string // /proc/loadavg
}

func newResults(o options, servers []*server) *results {
	return &results{opts: o, servers: servers, samples: map[string]map[string][]float64{}, start: time.Now()}
}

func (r *results) add(row, server string, v float64) {
	if r.samples[row] == nil {
		r.samples[row] = map[string][]float64{}
	}
	r.samples[row][server] = append(r.samples[row][server], v)
}

func (r *results) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logf("warning: %s", msg)
	r.problems = append(r.problems, msg)
}

// median returns the median sample of row on server, and whether there is one.
func (r *results) median(row, server string) (float64, bool) {
	v := r.samples[row][server]
	return median(v), len(v) > 0
}

// markdown renders the report: the medians table, the setups, every
// round's samples and any failed requests.
func (r *results) markdown(commit string) string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "# edgeproxy vs nginx vs Varnish\n\n")
	fmt.Fprintf(&b, "%s, commit %s, %d CPUs, %s, %s/%s. wrk -t%d -c%d, %d round(s) x %v per scenario and server "+
		"(median shown; servers rotate order each round). wrk, the harness's clients, MinIO and the server under test share the CPUs. Load average at start %s, at end %s (other work on the machine shows here).\n%s.\n\n",
		r.start.Format("2006-01-02 15:04 MST"), commit, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		o.threads, o.conns, o.rounds, o.duration, r.loadStart, r.loadEnd, r.versions)

	fmt.Fprintf(&b, "| scenario |")
	for _, n := range serverNames {
		fmt.Fprintf(&b, " %s |", n)
	}
	fmt.Fprintf(&b, " proxy/nginx | proxy/varnish |\n|---|")
	for range serverNames {
		fmt.Fprintf(&b, "---:|")
	}
	fmt.Fprintf(&b, "---:|---:|\n")
	for _, d := range rowDefs {
		if r.samples[d.key] == nil {
			continue
		}
		label := d.label
		if strings.Contains(label, "%d") {
			label = fmt.Sprintf(label, o.coldClients)
		}
		fmt.Fprintf(&b, "| %s |", label)
		for _, n := range serverNames {
			if v, ok := r.median(d.key, n); ok {
				fmt.Fprintf(&b, " %s |", d.format(v))
			} else {
				fmt.Fprintf(&b, " - |")
			}
		}
		for _, other := range []string{"nginx", "varnish"} {
			p, ok1 := r.median(d.key, "edgeproxy")
			q, ok2 := r.median(d.key, other)
			if !ok1 || !ok2 || q == 0 || math.IsNaN(p/q) {
				fmt.Fprintf(&b, " - |")
				continue
			}
			fmt.Fprintf(&b, " %.2f |", p/q)
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "\nRatios are edgeproxy's value divided by the other's: above 1 is better for edgeproxy where higher is better, below 1 where lower is better.\n")

	r.layersMarkdown(&b)

	fmt.Fprintf(&b, "\n## Setups\n\n")
	for _, s := range r.servers {
		fmt.Fprintf(&b, "- **%s** (`%s`): %s\n", s.Name, s.URL("KEY"), strings.Join(s.notes, "; "))
	}
	if len(r.diskNotes) > 0 {
		fmt.Fprintf(&b, "- **edgeproxy, disk-tier rows**: a second instance, warmed until a pass over the objects read nothing from the origin: %s\n", strings.Join(r.diskNotes, "; "))
	}
	if len(r.diskVarnishNotes) > 0 {
		fmt.Fprintf(&b, "- **varnish, disk-tier rows**: a second instance, warmed with the disk objects: %s\n", strings.Join(r.diskVarnishNotes, "; "))
	}

	if o.rounds > 1 {
		fmt.Fprintf(&b, "\n## Every round\n\n| scenario |")
		for _, n := range serverNames {
			fmt.Fprintf(&b, " %s |", n)
		}
		fmt.Fprintf(&b, "\n|---|")
		for range serverNames {
			fmt.Fprintf(&b, "---|")
		}
		fmt.Fprintln(&b)
		for _, d := range rowDefs {
			if d.key == rowHotOrigin || d.key == rowRSS || d.key == rowHWM || d.key == rowDiskOrigin || d.key == rowDiskRSS || d.key == rowDiskRSSFile || r.samples[d.key] == nil {
				continue
			}
			fmt.Fprintf(&b, "| %s |", d.key)
			for _, n := range serverNames {
				var vs []string
				for _, v := range r.samples[d.key][n] {
					vs = append(vs, d.format(v))
				}
				if len(vs) == 0 {
					vs = []string{"-"}
				}
				fmt.Fprintf(&b, " %s |", strings.Join(vs, " / "))
			}
			fmt.Fprintln(&b)
		}
	}

	if len(r.problems) > 0 {
		fmt.Fprintf(&b, "\n## Failed requests (the figures above include them)\n\n")
		for _, p := range r.problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	fmt.Fprintf(&b, "\nTotal harness time %v.\n", time.Since(r.start).Round(time.Second))
	return b.String()
}

// versions reports the versions of the comparison servers, for the header.
func versions(ctx context.Context) string {
	var out []string
	for _, t := range []struct{ bin, flag string }{{"nginx", "-v"}, {"varnishd", "-V"}, {"wrk", "-v"}} {
		p, err := toolPath(t.bin)
		if err != nil {
			continue
		}
		s, _ := runCmd(ctx, 10*time.Second, "/", nil, p, t.flag)
		line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
		out = append(out, strings.TrimSpace(line))
	}
	return strings.Join(out, "; ")
}
