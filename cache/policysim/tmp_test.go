package policysim

import (
	"testing"

	"github.com/edgeproxy/edgeproxy/cache/policy"
)

func TestTmp(t *testing.T) {
	sh := Shift(4, 400, 0.9, 16000)
	Index(sh, 64, 0, policy.TinyLFU)
}
