//go:build !race

package stats

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// TestHotPathAllocs: counting an access to a file already seen this
// interval and reporting delivered bytes allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	r := newTestRecorder(t, testConfig(t), client(t, testenv.Redis(t).Addr))
	id := uniq(t)
	r.Access(id)
	if n := testing.AllocsPerRun(1000, func() { r.Access(id) }); n != 0 {
		t.Errorf("Access allocates %.1f times", n)
	}
	tr := r.StartTransfer(TransferInfo{Token: "t", FileID: id, N: 1 << 40, Total: 1 << 40})
	defer tr.Finish(nil)
	if n := testing.AllocsPerRun(1000, func() { tr.Delivered(1000) }); n != 0 {
		t.Errorf("Delivered allocates %.1f times", n)
	}
}
