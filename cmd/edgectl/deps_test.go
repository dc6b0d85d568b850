package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeafDependencies: the operator's CLI stays a leaf. It must not link
// the server's HTTP stack (fasthttp, the proxy package) or Prometheus,
// which came in once through proxy.ObjectKey and once through the
// catalog sync's metrics.
func TestLeafDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/valyala/fasthttp", "github.com/prometheus/", "github.com/edgeproxy/edgeproxy/proxy"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("edgectl links %s", dep)
			}
		}
	}
}
