package proxy

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestServeCancelledBeforeStart: a context cancelled before fasthttp's
// Serve goroutine has registered the listener (a SIGTERM right after start)
// must still end Serve. fasthttp's Shutdown closes only the listeners it
// already knows, so before the fix Serve started accepting after the
// shutdown and never returned.
func TestServeCancelledBeforeStart(t *testing.T) {
	s, err := New(Config{DownloadBucket: "b", DrainTimeout: time.Second}, Deps{Origin: &pingOrigin{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: Serve: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			ln.Close()
			t.Fatalf("run %d: Serve did not return after its context was cancelled", i)
		}
	}
}
