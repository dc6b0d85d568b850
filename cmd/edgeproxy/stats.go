package main

import (
	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/proxy"
)

// statsAdapter gives the proxy's StatsRecorder view of a stats.Recorder;
// the proxy declares its own types so that it does not import stats.
type statsAdapter struct{ r *stats.Recorder }

func (a statsAdapter) Access(fileID string) { a.r.Access(fileID) }

func (a statsAdapter) StartTransfer(i proxy.TransferInfo) proxy.TransferTracker {
	t := a.r.StartTransfer(stats.TransferInfo(i))
	if t == nil {
		return nil // a nil *Transfer in the interface would not compare nil
	}
	return t
}
