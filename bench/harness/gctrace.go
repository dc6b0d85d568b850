package main

// GC accounting for the -slow section, from the runtime's own trace
// (GODEBUG=gctrace=1 in edgeproxy's environment, its lines in the log
// file): how much CPU the collector spent in a phase, beside the CPU the
// whole process spent and the CPU GOMAXPROCS allows. The runtime caps its
// collector at about half of the latter when the soft memory limit cannot
// be met, so a phase near 50% is a node whose limit is too low for its load.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// gcTotals is what gctrace lines report, summed.
type gcTotals struct {
	cycles int
	// cpu is all GC CPU as the runtime counts it: STW phases, assists,
	// background and idle marking, each as the wall time its workers ran,
	// so on a machine with more runnable threads than cores it exceeds the
	// CPU the kernel gave the process (which the report shows beside it).
	cpu   time.Duration
	procs int // GOMAXPROCS of the last line
}

// parseGCTrace reads one gctrace line, such as
//
//	gc 7 @1.234s 5%: 0.011+1.2+0.020 ms clock, 0.045+0.30/2.1/0.9+0.080 ms cpu, 40->41->20 MB, 42 MB goal, 0 MB stacks, 0 MB globals, 2 P
//
// and returns its CPU time (the five fields before "ms cpu") and P count;
// ok is false for any other line.
func parseGCTrace(line string) (cpu time.Duration, procs int, ok bool) {
	if !strings.HasPrefix(line, "gc ") {
		return 0, 0, false
	}
	fields := strings.Split(line, ", ")
	var cpuField string
	for _, f := range fields {
		if s, found := strings.CutSuffix(f, " ms cpu"); found {
			cpuField = s
		}
	}
	last := strings.TrimSuffix(fields[len(fields)-1], " (forced)")
	p, found := strings.CutSuffix(strings.TrimSpace(last), " P")
	if cpuField == "" || !found {
		return 0, 0, false
	}
	procs, err := strconv.Atoi(p)
	if err != nil || procs < 1 {
		return 0, 0, false
	}
	var ms float64
	n := 0
	for _, part := range strings.FieldsFunc(cpuField, func(r rune) bool { return r == '+' || r == '/' }) {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || v < 0 {
			return 0, 0, false
		}
		ms += v
		n++
	}
	if n != 5 {
		return 0, 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), procs, true
}

// readGCTotals sums the gctrace lines of the log at path.
func readGCTotals(path string) gcTotals {
	var t gcTotals
	f, err := os.Open(path)
	if err != nil {
		return t
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if cpu, p, ok := parseGCTrace(sc.Text()); ok {
			t.cycles++
			t.cpu += cpu
			t.procs = p
		}
	}
	return t
}

// gcShare is the collector's part of one phase.
type gcShare struct {
	cycles   int
	gcCPU    time.Duration
	procCPU  time.Duration // the whole process, GC included
	wall     time.Duration
	procs    int
	measured bool // false when no gctrace line was seen (GODEBUG overridden)
}

// ofCapacity is GC CPU over what GOMAXPROCS allows in the phase: the
// fraction the runtime caps at 50% under a soft memory limit, and the one
// runtime/metrics' /cpu/classes/gc/total:cpu-seconds gives over
// /cpu/classes/total:cpu-seconds.
func (g gcShare) ofCapacity() float64 {
	if g.wall <= 0 || g.procs < 1 {
		return 0
	}
	return float64(g.gcCPU) / (float64(g.wall) * float64(g.procs))
}

// gcMeter takes the totals at a phase's start; done returns the phase's share.
type gcMeter struct {
	p     *proc
	start time.Time
	gc    gcTotals
	cpu   time.Duration
}

func startGCMeter(p *proc) gcMeter {
	return gcMeter{p: p, start: time.Now(), gc: readGCTotals(p.LogPath), cpu: p.cpuTime()}
}

func (m gcMeter) done() gcShare {
	gc := readGCTotals(m.p.LogPath)
	return gcShare{
		cycles:   gc.cycles - m.gc.cycles,
		gcCPU:    gc.cpu - m.gc.cpu,
		procCPU:  m.p.cpuTime() - m.cpu,
		wall:     time.Since(m.start),
		procs:    gc.procs,
		measured: gc.cycles > 0,
	}
}

// String is the report's cell: cycles, GC CPU, and its two shares.
func (g gcShare) String() string {
	if !g.measured {
		return "not measured (no gctrace lines in the log)"
	}
	return fmt.Sprintf("%d cycles, %.1f s of GC worker time = %.0f%% of %d Ps x %.0f s (process CPU %.1f s)", g.cycles, g.gcCPU.Seconds(), 100*g.ofCapacity(), g.procs, g.wall.Seconds(), g.procCPU.Seconds())
}
