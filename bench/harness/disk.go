package main

// The disk-tier section: a second edgeproxy whose memory tier (64 MiB) is
// much smaller than what it serves, so its hits come from its disk tier,
// beside the nginx of the main comparison, which always serves from its
// cache files (through the page cache, as edgeproxy's disk tier does), and,
// when Varnish runs, a second Varnish with file storage (servers.go,
// varnishFile). The objects are warmed onto edgeproxy's disk and into the
// others' caches before anything is measured.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// diskMemory is the disk section's memory tier: a quarter of the 256 MiB
// object and two thirds of the 1 MiB set.
const diskMemory = "64MiB"

// diskObjects are the 1 MiB objects of the whole-object scenario: 96 MiB in
// all, more than diskMemory, read in random order.
func diskObjects() []object {
	objs := make([]object, diskObjectCount)
	for i := range objs {
		objs[i] = object{fmt.Sprintf("%s%03d", diskObjectPrefix, i), 1 << 20}
	}
	return objs
}

const (
	diskObjectPrefix = "disk-1m-"
	diskObjectCount  = 96
)

// Row keys of the disk section; the samples of the disk edgeproxy are filed
// under "edgeproxy" so the table sets them beside nginx's.
const (
	rowDiskRange    = "disk: random 64 KiB ranges"
	rowDiskRangeCPU = "disk: ranges per CPU-s"
	rowDisk1M       = "disk: 1 MiB objects"
	rowDiskSeq      = "disk: sequential 256 MiB"
	rowDiskOrigin   = "disk: origin bytes during disk runs"
	rowDiskRSS      = "disk: RSS"
	rowDiskRSSFile  = "disk: RSS file-backed"
)

// runDisk starts the disk edgeproxy, warms its disk tier until a whole pass
// reads nothing from the origin, and measures it and nginx (when running)
// on the three disk scenarios, the order rotating by round.
func runDisk(ctx context.Context, o options, w wrkRun, root, dir string, org *origin, servers []*server, res *results) error {
	logf("disk: starting edgeproxy with a %s memory tier", diskMemory)
	env := append(append([]string{}, o.extraEnv...), "EDGEPROXY_CACHE_MEMORY_BYTES="+diskMemory)
	ep, err := startServer(ctx, "edgeproxy", root, dir, org, env)
	if err != nil {
		return err
	}
	defer ep.stop()
	if err := verify(ctx, ep, org); err != nil {
		return err
	}
	res.diskNotes = append([]string{"memory_bytes=" + diskMemory}, ep.notes...)
	targets := []*server{ep}
	objs := append([]object{hot256M}, diskObjects()...)
	for _, s := range servers {
		switch s.Name {
		case "nginx":
			targets = append(targets, s)
			logf("disk: warming nginx with the 1 MiB objects")
			if err := warm(ctx, s, diskObjects()); err != nil {
				return err
			}
		case "varnish":
			logf("disk: starting Varnish with file storage")
			vf, err := startServer(ctx, varnishFile, root, filepath.Join(dir, varnishFile), org, nil)
			if err != nil {
				return err
			}
			defer vf.stop()
			vf.Name = "varnish" // its samples fill the varnish column of the disk rows
			res.diskVarnishNotes = vf.notes
			targets = append(targets, vf)
			logf("disk: warming Varnish (file storage) with the disk objects")
			if err := warm(ctx, vf, objs); err != nil {
				return err
			}
			if err := verify(ctx, vf, org); err != nil {
				return err
			}
		}
	}
	if err := warmDisk(ctx, ep, objs, res); err != nil {
		return err
	}

	summary := filepath.Join(root, "bench", "wrk", "summary.lua")
	rangeScript := filepath.Join(root, "bench", "wrk", "range.lua")
	objectsScript := filepath.Join(root, "bench", "wrk", "objects.lua")
	seq := w
	seq.conns = w.threads // one download per wrk thread: a sequential read, not a crowd
	before := ep.relay.Bytes()
	for round := 1; round <= o.rounds; round++ {
		for _, s := range rotate(targets, round-1) {
			logf("round %d/%d: disk scenarios on %s (3 x %v)", round, o.rounds, s.Name, o.duration)
			cpu0 := s.proc.cpuTime()
			r, err := w.run(ctx, rangeScript, s.URL(hot256M.Key), fmt.Sprint(hot256M.Size), fmt.Sprint(64<<10))
			if err != nil {
				return err
			}
			cpu := (s.proc.cpuTime() - cpu0).Seconds()
			res.add(rowDiskRange, s.Name, r.ReqPerSec())
			if cpu > 0 {
				res.add(rowDiskRangeCPU, s.Name, r.Requests/cpu)
			}
			diskProblems(res, s, round, "ranges", r)
			if r, err = w.run(ctx, objectsScript, s.URL(diskObjectPrefix), fmt.Sprint(diskObjectCount)); err != nil {
				return err
			}
			res.add(rowDisk1M, s.Name, r.BytesPerSec())
			diskProblems(res, s, round, "1 MiB objects", r)
			if r, err = seq.run(ctx, summary, s.URL(hot256M.Key)); err != nil {
				return err
			}
			res.add(rowDiskSeq, s.Name, r.BytesPerSec())
			diskProblems(res, s, round, "sequential", r)
		}
	}
	res.add(rowDiskOrigin, ep.Name, float64(ep.relay.Bytes()-before))
	m, err := ep.proc.treeMemory()
	if err != nil {
		return err
	}
	res.add(rowDiskRSS, ep.Name, float64(m.RSS))
	res.add(rowDiskRSSFile, ep.Name, float64(m.File))
	return nil
}

func diskProblems(res *results, s *server, round int, what string, r wrkResult) {
	if p := r.problems(); p != "" {
		res.problem("%s, round %d, disk %s: %s", s.Name, round, what, p)
	}
}

// warmDisk reads objs through s until a whole pass reads nothing from the
// origin (the disk writer drops chunks when its queue is full, so the first
// pass leaves gaps), at most five passes.
func warmDisk(ctx context.Context, s *server, objs []object, res *results) error {
	hc := &http.Client{Transport: newTransport(1), Timeout: 3 * time.Minute}
	defer hc.CloseIdleConnections()
	for pass := 1; pass <= 5; pass++ {
		logf("disk: warming edgeproxy's disk tier, pass %d", pass)
		before := s.relay.Bytes()
		for _, o := range objs {
			status, n, err := drain(ctx, hc, s.URL(o.Key))
			if err != nil {
				return fmt.Errorf("harness: disk warm %s: %w", o.Key, err)
			}
			if status != http.StatusOK || n != o.Size {
				return fmt.Errorf("harness: disk warm %s: status %d, %d bytes, want 200 and %d", o.Key, status, n, o.Size)
			}
		}
		// Let the disk writer drain its queue before judging the pass.
		settle(ctx, s.relay, time.Second, 20*time.Second)
		if s.relay.Bytes() == before {
			return nil
		}
	}
	res.problem("disk: edgeproxy still read the origin on the fifth warm-up pass")
	return ctx.Err()
}
