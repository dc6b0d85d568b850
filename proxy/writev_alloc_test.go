//go:build !race

package proxy

import (
	"io"
	"testing"
	"time"
)

// TestHoldHeaderAllocations: holding a header and sending it with the
// body as one writev allocates nothing per response (the held buffer is
// pooled, net.Buffers lives in the connection).
func TestHoldHeaderAllocations(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	go io.Copy(io.Discard, client) // ends when the test closes the connection
	hdr := make([]byte, 300)
	body := make([]byte, 64<<10)
	n := testing.AllocsPerRun(200, func() {
		holdHeader(server)
		server.Write(hdr)
		if _, err := server.Write(body); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("a held header and its writev allocate %.1f times per response, want 0", n)
	}
}
