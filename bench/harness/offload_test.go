package main

import (
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/cache/policysim"
)

// TestOffloadScenarios: every reported window lies inside its trace and
// selects some requests, and the traces need at most the objects seeded.
func TestOffloadScenarios(t *testing.T) {
	for _, sc := range offloadScenarios() {
		if len(sc.windows) == 0 {
			t.Errorf("%s: no window", sc.name)
		}
		for _, w := range sc.windows {
			if w.from < 0 || w.to > len(sc.trace) || w.from >= w.to {
				t.Errorf("%s, %s: window [%d, %d) outside %d requests", sc.name, w.label, w.from, w.to, len(sc.trace))
			}
			all := make([]bool, len(sc.trace))
			for i := range all {
				all[i] = true
			}
			if r := w.ratio(sc.trace, all); r != 1 {
				t.Errorf("%s, %s: selects no request", sc.name, w.label)
			}
		}
	}
}

func TestOffloadWindowRatio(t *testing.T) {
	tr := policysim.Trace{1, 2, 1, 3, 1}
	hit := []bool{false, false, true, false, true}
	if got := (offloadWindow{from: 0, to: 5}).ratio(tr, hit); got != 0.4 {
		t.Errorf("all: %v", got)
	}
	if got := (offloadWindow{from: 1, to: 5, keep: func(k int) bool { return k == 1 }}).ratio(tr, hit); got != 1 {
		t.Errorf("object 1 from request 1: %v", got)
	}
	if got := (offloadWindow{from: 3, to: 4, keep: func(k int) bool { return k == 1 }}).ratio(tr, hit); got != 0 {
		t.Errorf("empty selection: %v", got)
	}
}

// TestOffloadMarkdown renders a section from made-up runs: one row per
// window, one column per variant.
func TestOffloadMarkdown(t *testing.T) {
	scs := offloadScenarios()[:1]
	vs := []offloadVariant{{name: "a"}, {name: "b"}}
	hit := make([]bool, len(scs[0].trace))
	for i := 4000; i < 8000; i += 2 {
		hit[i] = true
	}
	md := offloadMarkdown(options{offloadSize: 256 << 10}, scs, vs, [][]offloadRun{{{hit: hit}, {hit: make([]bool, len(hit))}}})
	if !strings.Contains(md, "| second pass | ") || !strings.Contains(md, " 0.500 | 0.000 |") {
		t.Fatalf("section:\n%s", md)
	}
}
