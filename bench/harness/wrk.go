package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what bench/wrk/summary.lua prints at the end of a run.
type wrkResult struct {
	Requests      float64 `json:"requests"`
	Bytes         float64 `json:"bytes"`
	DurationUS    float64 `json:"duration_us"`
	ConnectErrors float64 `json:"connect_errors"`
	ReadErrors    float64 `json:"read_errors"`
	WriteErrors   float64 `json:"write_errors"`
	StatusErrors  float64 `json:"status_errors"` // responses other than 2xx/3xx
	Timeouts      float64 `json:"timeouts"`
	P50US         float64 `json:"p50_us"`
	P99US         float64 `json:"p99_us"`
}

// ReqPerSec is wrk's Requests/sec.
func (r wrkResult) ReqPerSec() float64 { return r.Requests / (r.DurationUS / 1e6) }

// BytesPerSec is wrk's Transfer/sec (response headers included).
func (r wrkResult) BytesPerSec() float64 { return r.Bytes / (r.DurationUS / 1e6) }

// problems describes failed requests, or "" when there were none.
func (r wrkResult) problems() string {
	var p []string
	add := func(n float64, what string) {
		if n > 0 {
			p = append(p, fmt.Sprintf("%.0f %s", n, what))
		}
	}
	add(r.StatusErrors, "non-2xx/3xx")
	add(r.ConnectErrors, "connect errors")
	add(r.ReadErrors, "read errors")
	add(r.WriteErrors, "write errors")
	add(r.Timeouts, "timeouts")
	return strings.Join(p, ", ")
}

// wrkRun is one wrk invocation; the thread and connection counts are the
// same for every server.
type wrkRun struct {
	bin      string
	threads  int
	conns    int
	duration time.Duration
	headers  []string // "Name: value", each sent as wrk -H
}

// run runs wrk with script against url; args go to the script after "--".
func (w wrkRun) run(ctx context.Context, script, url string, args ...string) (wrkResult, error) {
	secs := max(int(math.Round(w.duration.Seconds())), 1)
	cmdArgs := []string{
		"-t", strconv.Itoa(w.threads), "-c", strconv.Itoa(w.conns),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "10s",
	}
	for _, h := range w.headers {
		cmdArgs = append(cmdArgs, "-H", h)
	}
	cmdArgs = append(cmdArgs, "-s", script, url)
	if len(args) > 0 {
		cmdArgs = append(append(cmdArgs, "--"), args...)
	}
	out, err := runCmd(ctx, time.Duration(secs)*time.Second+60*time.Second, "/", nil, w.bin, cmdArgs...)
	if err != nil {
		return wrkResult{}, err
	}
	for _, line := range strings.Split(out, "\n") {
		js, ok := strings.CutPrefix(strings.TrimSpace(line), "WRKJSON ")
		if !ok {
			continue
		}
		var r wrkResult
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return r, fmt.Errorf("harness: wrk summary %q: %w", js, err)
		}
		if r.DurationUS <= 0 || r.Requests == 0 {
			return r, fmt.Errorf("harness: wrk against %s completed no request:\n%s", url, out)
		}
		return r, nil
	}
	return wrkResult{}, fmt.Errorf("harness: no WRKJSON line in wrk output:\n%s", out)
}
