package main

import (
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// statsAdapter gives the proxy's StatsRecorder view of a stats.Recorder:
// StartTransfer returns the proxy's small TransferTracker interface, and a
// nil *stats.Transfer must become a nil interface on the way.
type statsAdapter struct{ r *stats.Recorder }

func (a statsAdapter) Access(fileID string) { a.r.Access(fileID) }

func (a statsAdapter) StartTransfer(i stats.TransferInfo) proxy.TransferTracker {
	t := a.r.StartTransfer(i)
	if t == nil {
		return nil // a nil *Transfer in the interface would not compare nil
	}
	return t
}
