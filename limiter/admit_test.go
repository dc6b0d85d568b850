package limiter

import (
	"errors"
	"testing"
	"time"
)

func rejection(t *testing.T, err error, reason string) *Rejection {
	t.Helper()
	var rej *Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v, want a *Rejection (%s)", err, reason)
	}
	if rej.Reason != reason {
		t.Fatalf("reason = %q, want %q", rej.Reason, reason)
	}
	if rej.RetryAfter <= 0 {
		t.Fatalf("RetryAfter = %v, want > 0", rej.RetryAfter)
	}
	return rej
}

func TestAdmitClientConcurrency(t *testing.T) {
	l, _ := newFake(t, Config{MaxConcurrentPerClient: 2, RetryAfter: 3 * time.Second})
	a1, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Admit("a")
	if rej := rejection(t, err, ReasonClientConcurrency); rej.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter = %v, want the configured 3s", rej.RetryAfter)
	}
	// Another client is not affected.
	b, err := l.Admit("b")
	if err != nil {
		t.Fatalf("other client refused: %v", err)
	}
	b.Release()

	a1.Release()
	a1.Release() // idempotent: must not free a second slot
	a3, err := l.Admit("a")
	if err != nil {
		t.Fatalf("Release did not free a slot: %v", err)
	}
	_, err = l.Admit("a")
	rejection(t, err, ReasonClientConcurrency)
	a2.Release()
	a3.Release()

	st := l.Stats()
	if st.ActiveDownloads != 0 || st.ActiveClients != 0 {
		t.Errorf("after releasing all: %d downloads, %d clients active", st.ActiveDownloads, st.ActiveClients)
	}
	if st.Rejections[ReasonClientConcurrency] != 2 {
		t.Errorf("rejections = %v, want 2 client_concurrency", st.Rejections)
	}
	var nilLease *Lease
	nilLease.Release() // must not panic
}

func TestAdmitNodeConcurrency(t *testing.T) {
	l, _ := newFake(t, Config{MaxConcurrent: 3})
	var leases []*Lease
	for _, id := range []string{"a", "b", "c"} {
		le, err := l.Admit(id)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, le)
	}
	_, err := l.Admit("d")
	if rej := rejection(t, err, ReasonNodeConcurrency); rej.RetryAfter != DefaultRetryAfter {
		t.Errorf("RetryAfter = %v, want default %v", rej.RetryAfter, DefaultRetryAfter)
	}
	if st := l.Stats(); st.ActiveDownloads != 3 || st.ActiveClients != 3 {
		t.Errorf("stats %+v, want 3 active downloads and clients", st)
	}
	leases[1].Release()
	le, err := l.Admit("d")
	if err != nil {
		t.Fatalf("Release did not free a node slot: %v", err)
	}
	le.Release()
}

func TestAdmitRequestRate(t *testing.T) {
	// 2 requests/s, burst 4, on a fake clock.
	l, clk := newFake(t, Config{RequestRate: 2, RequestBurst: 4})
	for i := range 4 {
		le, err := l.Admit("a")
		if err != nil {
			t.Fatalf("request %d inside the burst refused: %v", i, err)
		}
		le.Release()
	}
	_, err := l.Admit("a")
	rej := rejection(t, err, ReasonRequestRate)
	if rej.RetryAfter < 490*time.Millisecond || rej.RetryAfter > 500*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 500ms (one token at 2/s)", rej.RetryAfter)
	}
	clk.Advance(250 * time.Millisecond)
	_, err = l.Admit("a")
	if rej = rejection(t, err, ReasonRequestRate); rej.RetryAfter > 250*time.Millisecond {
		t.Errorf("after 250ms RetryAfter = %v, want <= 250ms", rej.RetryAfter)
	}
	clk.Advance(rej.RetryAfter)
	le, err := l.Admit("a")
	if err != nil {
		t.Fatalf("refused after waiting RetryAfter: %v", err)
	}
	le.Release()
	// Another client has its own bucket.
	le, err = l.Admit("b")
	if err != nil {
		t.Fatal(err)
	}
	le.Release()
	// Over 10 simulated seconds at one attempt per 10ms, the admitted
	// count is the rate (2/s) within 5%, plus nothing: the burst is spent.
	admitted := 0
	for range 1000 {
		clk.Advance(10 * time.Millisecond)
		if le, err := l.Admit("a"); err == nil {
			admitted++
			le.Release()
		}
	}
	if !within(float64(admitted), 20, 0.05) {
		t.Errorf("admitted %d in 10s, want 20 (2/s)", admitted)
	}
}

func TestAdmitRateRejectionDoesNotHoldSlots(t *testing.T) {
	l, _ := newFake(t, Config{RequestRate: 1, RequestBurst: 1, MaxConcurrentPerClient: 1})
	le, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	le.Release()
	_, err = l.Admit("a")
	rejection(t, err, ReasonRequestRate)
	if st := l.Stats(); st.ActiveDownloads != 0 {
		t.Errorf("a rejected request holds %d slots", st.ActiveDownloads)
	}
}

func TestAdmitAfterClose(t *testing.T) {
	l, _ := newFake(t, Config{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Admit("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Admit after Close: %v, want ErrClosed", err)
	}
}
