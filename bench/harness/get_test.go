package main

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The ratio is edgectl's median speed over aria2c's: above 1, edgectl is faster.
func TestGetMarkdownRatio(t *testing.T) {
	o := options{get: getOptions{conns: 8}}
	obj := object{Key: "k", Size: 1 << 30}
	runs := []getRun{
		{"edgectl", 1, 4 * time.Second}, {"aria2c", 1, 8 * time.Second},
		{"aria2c", 2, 8 * time.Second}, {"edgectl", 2, 4 * time.Second},
	}
	md := getMarkdown(o, obj, runs, "1", "2", "abc")
	if !strings.Contains(md, "median: edgectl 256 MiB/s, aria2c 128 MiB/s; edgectl/aria2c = 2.00") || !strings.Contains(md, "| 2 | edgectl | 4.00 | 256 |") {
		t.Fatalf("report:\n%s", md)
	}
}
