package limiter

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func has(l *Limiter, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients[id] != nil
}

func admitRelease(t testing.TB, l *Limiter, id string) {
	le, err := l.Admit(id)
	if err != nil {
		t.Fatalf("Admit(%q): %v", id, err)
	}
	le.Release()
}

func TestEvictIdleTTL(t *testing.T) {
	l, clk := newFake(t, Config{IdleTTL: time.Minute})
	for i := range 10 {
		admitRelease(t, l, fmt.Sprint("c", i))
	}
	held, _ := l.Admit("busy")
	clk.Advance(30 * time.Second)
	admitRelease(t, l, "recent")
	clk.Advance(31 * time.Second) // c0..c9 idle 61s, recent 31s
	admitRelease(t, l, "new")
	if got := l.Stats().Clients; got != 13-2 {
		t.Errorf("Admit evicted down to %d clients, want 11 (two per admission)", got)
	}
	l.sweep()
	if got := l.Stats().Clients; got != 3 {
		t.Errorf("after sweep %d clients, want busy, recent and new", got)
	}
	for _, id := range []string{"busy", "recent", "new"} {
		if !has(l, id) {
			t.Errorf("%s evicted", id)
		}
	}
	// A client with a download in progress is never evicted, however old.
	clk.Advance(time.Hour)
	l.sweep()
	if !has(l, "busy") {
		t.Fatal("client with an active lease was evicted")
	}
	checkInvariants(t, l)
	held.Release()
	clk.Advance(time.Minute)
	l.sweep()
	if got := l.Stats().Clients; got != 0 {
		t.Errorf("%d clients left after everything went idle", got)
	}
	if got := l.Stats().Evictions; got != 13 {
		t.Errorf("Evictions = %d, want 13 (every client once)", got)
	}
}

func TestEvictLRU(t *testing.T) {
	l, clk := newFake(t, Config{MaxClients: 3})
	for _, id := range []string{"a", "b", "c"} {
		admitRelease(t, l, id)
		clk.Advance(time.Second)
	}
	admitRelease(t, l, "a") // a is now the most recent; b the least
	admitRelease(t, l, "d")
	checkInvariants(t, l)
	if has(l, "b") || !has(l, "a") || !has(l, "c") || !has(l, "d") {
		t.Fatal("LRU did not evict the least recently used client (b)")
	}
	// Pinned clients may exceed the bound, by at most the active downloads.
	var leases []*Lease
	for _, id := range []string{"p", "q", "r", "s"} {
		le, err := l.Admit(id)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, le)
	}
	checkInvariants(t, l)
	if got := l.Stats().Clients; got != 4 {
		t.Errorf("%d clients, want the 4 active ones only", got)
	}
	for _, le := range leases {
		le.Release()
	}
	admitRelease(t, l, "t")
	if got := l.Stats().Clients; got > 3 {
		t.Errorf("back to idle but %d clients kept, bound is 3", got)
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fillClients admits n distinct clients, each with a request bucket and a
// byte bucket, the most an entry ever holds.
func fillClients(t testing.TB, l *Limiter, n int) {
	buf := make([]byte, 1024)
	for i := range n {
		le, err := l.Admit(fmt.Sprintf("198.%d.%d.%d", i>>16, (i>>8)&255, i&255))
		if err != nil {
			t.Fatal(err)
		}
		r := l.Shape(&zeroReader{}, le, 0)
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		r.Close()
		le.Release()
	}
}

// TestMemoryPerClient measures what one tracked client costs; the figure is
// quoted in the package doc and in DefaultMaxClients' doc.
func TestMemoryPerClient(t *testing.T) {
	const n = 100_000
	for _, tc := range []struct {
		name  string
		cfg   Config
		limit float64
	}{
		{"entry only", Config{MaxConcurrentPerClient: 8}, 250},
		{"with request and byte buckets", Config{Rate: 1 * MiB, RequestRate: 10}, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newFake(t, tc.cfg)
			before := heapAfterGC()
			fillClients(t, l, n)
			after := heapAfterGC()
			if got := l.Stats().Clients; got != n {
				t.Fatalf("%d clients tracked, want %d", got, n)
			}
			per := float64(int64(after)-int64(before)) / n
			t.Logf("%s: %.0f bytes per client", tc.name, per)
			if per > tc.limit {
				t.Errorf("%.0f bytes per client, want <= %.0f", per, tc.limit)
			}
			runtime.KeepAlive(l)
		})
	}
}

func TestEvictionBoundsMemory(t *testing.T) {
	const bound = 1000
	l, _ := newFake(t, Config{Rate: 1 * MiB, RequestRate: 10, MaxClients: bound})
	before := heapAfterGC()
	fillClients(t, l, 100_000)
	after := heapAfterGC()
	st := l.Stats()
	if st.Clients != bound || st.Evictions != 100_000-bound {
		t.Fatalf("clients %d evictions %d, want %d and %d", st.Clients, st.Evictions, bound, 100_000-bound)
	}
	if grew := int64(after) - int64(before); grew > bound*1024 {
		t.Errorf("heap grew %d bytes for %d kept clients: eviction does not free", grew, bound)
	}
	runtime.KeepAlive(l)
}

// checkInvariants verifies the client table: every idle client is in the
// list exactly once, every pinned one is out of it, and the counters agree.
func checkInvariants(t *testing.T, l *Limiter) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	inList := map[*client]bool{}
	n := 0
	for c := l.idle.next; c != &l.idle; c = c.next {
		if n++; n > len(l.clients)+1 {
			t.Fatal("idle list longer than the table: cycle")
		}
		if c.next.prev != c {
			t.Fatal("idle list links broken")
		}
		if c.active != 0 {
			t.Fatalf("client %q with %d downloads is in the idle list", c.id, c.active)
		}
		if l.clients[c.id] != c {
			t.Fatalf("idle client %q not in the table", c.id)
		}
		inList[c] = true
	}
	active, downloads := 0, 0
	for id, c := range l.clients {
		if c.active < 0 {
			t.Fatalf("client %q: %d downloads", id, c.active)
		}
		if c.active > 0 {
			active++
			downloads += int(c.active)
			if c.next != nil {
				t.Fatalf("pinned client %q still linked", id)
			}
		} else if !inList[c] {
			t.Fatalf("idle client %q missing from the list", id)
		}
	}
	if int(l.nClients.Load()) != len(l.clients) || int(l.activeClients.Load()) != active ||
		int(l.activeDL.Load()) != downloads || l.nodeAct != downloads {
		t.Fatalf("counters: clients %d/%d active %d/%d downloads %d/%d/%d", l.nClients.Load(), len(l.clients),
			l.activeClients.Load(), active, l.activeDL.Load(), l.nodeAct, downloads)
	}
}

func TestConcurrentChurn(t *testing.T) {
	l, clk := newFake(t, Config{Rate: 1 * MiB, MaxClients: 10, IdleTTL: time.Second, MaxConcurrentPerClient: 3, MaxConcurrent: 20})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, 4*KiB)
			var held []*Lease
			for i := range 2000 {
				if g == 0 && i%50 == 0 {
					clk.Advance(300 * time.Millisecond)
				}
				le, err := l.Admit(fmt.Sprint("c", (i*7+g)%50))
				if err == nil {
					r := l.Shape(&zeroReader{}, le, 0)
					r.Read(buf)
					r.Close()
					held = append(held, le)
				}
				if len(held) > 2 || (err != nil && len(held) > 0) {
					held[0].Release()
					held = held[1:]
				}
				if i%500 == 0 {
					l.sweep()
				}
			}
			for _, le := range held {
				le.Release()
			}
		}()
	}
	for range 4 {
		<-done
	}
	checkInvariants(t, l)
	if got := l.Stats(); got.Clients > 10 || got.ActiveDownloads != 0 {
		t.Errorf("after churn: %d clients (bound 10), %d downloads", got.Clients, got.ActiveDownloads)
	}
}
