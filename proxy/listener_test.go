package proxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestLeadOK(t *testing.T) {
	tests := []struct {
		in   []string // successive reads
		want bool
	}{
		{[]string{"GET / HTTP/1.1\r\n"}, true},
		{[]string{"\r\nGET /"}, true},
		{[]string{"\r", "\n", "G"}, true},
		{[]string{"\r\n"}, true}, // one empty line: wait for more
		{[]string{"\r"}, true},
		{[]string{"\n"}, false},
		{[]string{"\n\n\n\n"}, false},
		{[]string{"\r\n\r\n"}, false},
		{[]string{"\r\n", "\n"}, false},
		{[]string{"\r\r\n"}, false},
		{[]string{"\rG"}, false},
		{[]string{"G", "\n\n"}, true}, // only the connection's start is checked
	}
	for _, tt := range tests {
		c := &frontConn{}
		ok := true
		for _, r := range tt.in {
			if ok = c.leadOK([]byte(r)); !ok {
				break
			}
		}
		if ok != tt.want {
			t.Errorf("%q: leadOK = %v, want %v", tt.in, ok, tt.want)
		}
	}
}

// lingerPair returns a frontListener with the given bounds, a client
// connection and the server's end of it.
func lingerPair(t *testing.T, l *frontListener) (client net.Conn, server *frontConn) {
	t.Helper()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, c.(*frontConn)
}

func newTestFrontListener(t *testing.T, timeout time.Duration, maxBytes int64, slots int) *frontListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newFrontListener(ln)
	l.timeout, l.maxBytes, l.slots = timeout, maxBytes, make(chan struct{}, slots)
	t.Cleanup(func() { l.Close(); l.shutdown() })
	return l
}

func (l *frontListener) lingeringCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lingering)
}

// TestLingerAnswerThenEOF: the client that is still sending reads the
// whole answer and then EOF, not a reset.
func TestLingerAnswerThenEOF(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	if _, err := client.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := io.ReadFull(server, buf); err != nil { // the server reads a little
		t.Fatal(err)
	}
	io.WriteString(server, "answer")
	lingerOnClose(server)
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v; want the answer and EOF", got, err)
	}
	client.Close()
	testenv.WaitFor(t, 30*time.Second, "linger ends when the client closes", func() bool { return l.lingeringCount() == 0 })
}

// TestLingerByteBudget: a client that never stops sending is cut off
// after maxBytes, long before the (here one-hour) deadline.
func TestLingerByteBudget(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 64<<10, 4)
	client, server := lingerPair(t, l)
	lingerOnClose(server)
	server.Close()
	if l.lingeringCount() != 1 {
		t.Fatalf("%d connections lingering, want 1", l.lingeringCount())
	}
	client.SetDeadline(time.Now().Add(30 * time.Second))
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	var err error
	for i := 0; i < 4096 && err == nil; i++ { // at most 64 MiB
		_, err = client.Write(chunk)
	}
	if err == nil {
		t.Fatal("the server read 64 MiB of lingering input")
	}
	testenv.WaitFor(t, 30*time.Second, "linger ends after the byte budget", func() bool { return l.lingeringCount() == 0 })
}

// TestLingerShutdown: shutdown ends every linger at once and waits for
// its goroutine; no connection lingers after it.
func TestLingerShutdown(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	lingerOnClose(server)
	server.Close()
	done := make(chan struct{})
	go func() { l.shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown waits for a lingering connection")
	}
	if n := l.lingeringCount(); n != 0 {
		t.Fatalf("%d connections lingering after shutdown", n)
	}
	client.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection is still open after shutdown")
	}
	// After shutdown a marked connection closes at once.
	_, server2 := lingerPair(t, l)
	lingerOnClose(server2)
	server2.Close()
	if n := l.lingeringCount(); n != 0 {
		t.Fatalf("%d connections lingering after shutdown", n)
	}
}

// TestLingerSlots: beyond the slots, a marked connection closes at once;
// an unmarked one never lingers; a second Close ends a linger.
func TestLingerSlots(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 1)
	_, first := lingerPair(t, l)
	lingerOnClose(first)
	first.Close()
	client2, second := lingerPair(t, l)
	lingerOnClose(second)
	second.Close()
	_, third := lingerPair(t, l)
	third.Close()
	if n := l.lingeringCount(); n != 1 {
		t.Fatalf("%d connections lingering, want 1", n)
	}
	client2.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := client2.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection beyond the slots is open")
	}
	first.Close()
	testenv.WaitFor(t, 30*time.Second, "a second Close ends the linger", func() bool { return l.lingeringCount() == 0 })
}

// TestFrontConnKeepsTCPFeatures: the wrapper keeps what fasthttp and
// bufio look for on a *net.TCPConn (keep-alive, ReadFrom for sendfile).
func TestFrontConnKeepsTCPFeatures(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 1)
	client, server := lingerPair(t, l)
	var c net.Conn = server
	ka, ok := c.(interface {
		SetKeepAlive(bool) error
		SetKeepAlivePeriod(time.Duration) error
	})
	if !ok || ka.SetKeepAlive(true) != nil || ka.SetKeepAlivePeriod(time.Minute) != nil {
		t.Fatal("no working SetKeepAlive/SetKeepAlivePeriod")
	}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatal("no ReadFrom")
	}
	if n, err := rf.ReadFrom(bytes.NewReader([]byte("hello"))); n != 5 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	got := make([]byte, 5)
	client.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "hello" {
		t.Fatalf("client got %q, %v", got, err)
	}
}

// wrappedConn hides *net.TCPConn the way go-proxyproto's Conn does, and
// exposes it the same way.
type wrappedConn struct{ tc *net.TCPConn }

func (w wrappedConn) Read(p []byte) (int, error)         { return w.tc.Read(p) }
func (w wrappedConn) Write(p []byte) (int, error)        { return w.tc.Write(p) }
func (w wrappedConn) Close() error                       { return w.tc.Close() }
func (w wrappedConn) LocalAddr() net.Addr                { return w.tc.LocalAddr() }
func (w wrappedConn) RemoteAddr() net.Addr               { return w.tc.RemoteAddr() }
func (w wrappedConn) SetDeadline(t time.Time) error      { return w.tc.SetDeadline(t) }
func (w wrappedConn) SetReadDeadline(t time.Time) error  { return w.tc.SetReadDeadline(t) }
func (w wrappedConn) SetWriteDeadline(t time.Time) error { return w.tc.SetWriteDeadline(t) }
func (w wrappedConn) TCPConn() (*net.TCPConn, bool)      { return w.tc, true }

// TestLingerThroughWrapper: behind a PROXY protocol listener (whose
// connections are not *net.TCPConn) the close still lingers.
func TestLingerThroughWrapper(t *testing.T) {
	l := newTestFrontListener(t, time.Hour, 1<<20, 4)
	client, server := lingerPair(t, l)
	server.Conn = wrappedConn{server.Conn.(*net.TCPConn)}
	if _, err := client.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(server, "answer")
	lingerOnClose(server)
	server.Close()
	client.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v; want the answer and EOF", got, err)
	}
}
