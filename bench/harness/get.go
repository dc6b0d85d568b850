package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/checksum"
)

// aria2Tool is the reference download client of the -get section.
var aria2Tool = tool{"aria2c", "aria2"}

// getOptions are the flags of the -get section.
type getOptions struct {
	conns int
	size  int64
}

// getRun is one timed download.
type getRun struct {
	client  string
	round   int
	elapsed time.Duration
}

// runGetBench answers "is edgectl get -c N at least as fast as aria2c -x N
// -s N?": both download the same object through the same edgeproxy (cache
// warmed first, so neither pays the origin fill), alternating client order
// round by round on a shared machine, each file checked byte for byte
// against the object afterwards (outside the timing).
func runGetBench(ctx context.Context, o options) error {
	root, tmp, done, err := prepare(ctx, o, "edgeproxy-getbench-", []tool{aria2Tool})
	if err != nil {
		return err
	}
	defer done()
	aria2, err := toolPath(aria2Tool.bin)
	if err != nil {
		return err
	}
	edgectl := filepath.Join(tmp, "edgectl")
	logf("building edgectl")
	if _, err := runCmd(ctx, 5*time.Minute, root, nil, "go", "build", "-o", edgectl, "./cmd/edgectl"); err != nil {
		return err
	}
	logf("starting MinIO")
	org, err := startOrigin(ctx, filepath.Join(tmp, "minio"))
	if err != nil {
		return err
	}
	defer org.Close()
	obj := object{Key: "get-bench", Size: o.get.size}
	logf("seeding %s (%d MiB)", obj.Key, obj.Size>>20)
	if err := org.seed(ctx, []object{obj}); err != nil {
		return err
	}
	want, err := checksum.SHA256(objectReader(obj))
	if err != nil {
		return err
	}
	logf("starting edgeproxy")
	s, err := startServer(ctx, "edgeproxy", root, filepath.Join(tmp, "edgeproxy"), org, o.extraEnv)
	if err != nil {
		return err
	}
	defer s.stop()
	url := s.URL(obj.Key)
	logf("warming the cache")
	if err := warm(ctx, s, []object{obj}); err != nil {
		return err
	}

	n := fmt.Sprint(o.get.conns)
	clients := map[string][]string{
		"edgectl": {edgectl, "get", url, "-c", n, "-o", "OUT"},
		// Defaults otherwise (segment size, disk cache, file allocation):
		// the client as people run it.
		"aria2c": {aria2, "-x" + n, "-s" + n, "--allow-overwrite=true", "--auto-file-renaming=false",
			"--console-log-level=warn", "--summary-interval=0", "--download-result=hide", "-d", tmp, "-o", "OUTNAME", url},
	}
	order := []string{"edgectl", "aria2c"}
	var runs []getRun
	loadStart := loadAverage()
	for r := 1; r <= o.rounds; r++ {
		for _, name := range rotate(order, r-1) {
			out := filepath.Join(tmp, fmt.Sprintf("%s-r%d.bin", name, r))
			args := slices.Clone(clients[name])
			for i, a := range args {
				args[i] = strings.NewReplacer("OUTNAME", filepath.Base(out), "OUT", out).Replace(a)
			}
			start := time.Now()
			if _, err := runCmd(ctx, 30*time.Minute, tmp, nil, args[0], args[1:]...); err != nil {
				return err
			}
			el := time.Since(start)
			got, err := checksum.FileSHA256(out)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("harness: %s round %d: SHA-256 %s, want %s", name, r, got, want)
			}
			os.Remove(out)
			logf("round %d: %s %v (%.0f MiB/s)", r, name, el.Round(time.Millisecond), float64(obj.Size)/(1<<20)/el.Seconds())
			runs = append(runs, getRun{client: name, round: r, elapsed: el})
		}
	}
	report := getMarkdown(o, obj, runs, loadStart, loadAverage(), gitCommit(ctx, root))
	return writeReport(root, o.out, report)
}

// getMarkdown is the -get section's report: every run, the medians and
// the ratio of edgectl's speed to aria2c's (>= 1: edgectl at least as fast).
func getMarkdown(o options, obj object, runs []getRun, loadStart, loadEnd, commit string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## edgectl get -c %d vs aria2c -x%d -s%d, %d MiB through edgeproxy (cache warm)\n\n", o.get.conns, o.get.conns, o.get.conns, obj.Size>>20)
	fmt.Fprintf(&b, "commit %s, load average %s at start, %s at end; every file checked by SHA-256.\n\n", commit, loadStart, loadEnd)
	b.WriteString("| round | client | seconds | MiB/s |\n|---|---|---|---|\n")
	med := map[string][]float64{}
	for _, r := range runs {
		mibs := float64(obj.Size) / (1 << 20) / r.elapsed.Seconds()
		med[r.client] = append(med[r.client], mibs)
		fmt.Fprintf(&b, "| %d | %s | %.2f | %.0f |\n", r.round, r.client, r.elapsed.Seconds(), mibs)
	}
	e, a := median(med["edgectl"]), median(med["aria2c"])
	fmt.Fprintf(&b, "\nmedian: edgectl %.0f MiB/s, aria2c %.0f MiB/s; edgectl/aria2c = %.2f\n", e, a, e/a)
	return b.String()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
