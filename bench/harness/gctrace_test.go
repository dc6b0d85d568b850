package main

import (
	"testing"
	"time"
)

func TestParseGCTrace(t *testing.T) {
	for _, tc := range []struct {
		line  string
		cpu   time.Duration
		procs int
		ok    bool
	}{
		{"", 0, 0, false},
		{"time=2026-11-29 level=INFO msg=\"gc 1\"", 0, 0, false},
		{"gc 1 @0.012s 2%: 0.013+0.42+0.004 ms clock, 4->4->0 MB, 2 P", 0, 0, false},                       // no cpu field
		{"gc 1 @0.012s 2%: 0.013+0.42+0.004 ms clock, 0.1+0.2/0.3/0.4+0.5 ms cpu, 4 MB goal", 0, 0, false}, // no P
		{"gc 1 @0.012s 2%: 0.013+0.42+0.004 ms clock, 0.1+0.2/x/0.4+0.5 ms cpu, 2 P", 0, 0, false},
		{"gc 1 @0.012s 2%: 0.013+0.42+0.004 ms clock, 0.1+0.2/0.4+0.5 ms cpu, 2 P", 0, 0, false}, // four fields
		{"gc 1 @0.012s 2%: 0.013+0.42+0.004 ms clock, 0.10+0.20/0.30/0.40+0.50 ms cpu, 4->4->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P", 1500 * time.Microsecond, 2, true},
		{"gc 913 @61.5s 48%: 0.07+950+0.05 ms clock, 0.15+420/900/0+0.1 ms cpu, 620->640->600 MB, 625 MB goal, 40 MB stacks, 0 MB globals, 8 P (forced)", 1320250 * time.Microsecond, 8, true},
		{"gc 913 @61.5s 48%: 0.07+950+0.05 ms clock, 0.15+420/900/0+0.1 ms cpu, 620->640->600 MB, 625 MB goal, 40 MB stacks, 0 MB globals, 8 P", 1320250 * time.Microsecond, 8, true},
	} {
		cpu, procs, ok := parseGCTrace(tc.line)
		if ok != tc.ok || procs != tc.procs || (cpu-tc.cpu).Abs() > time.Microsecond {
			t.Errorf("parseGCTrace(%q) = %v, %d, %v; want %v, %d, %v", tc.line, cpu, procs, ok, tc.cpu, tc.procs, tc.ok)
		}
	}
}

func TestGCShare(t *testing.T) {
	g := gcShare{gcCPU: time.Second, procCPU: 4 * time.Second, wall: 10 * time.Second, procs: 2}
	if got := g.ofCapacity(); got != 0.05 {
		t.Errorf("ofCapacity = %v, want 0.05", got)
	}
	if (gcShare{}).ofCapacity() != 0 {
		t.Error("empty share is not 0")
	}
}
