package proxy

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// fakeSpan is a file span whose mapped attempt takes what the test says:
// head bytes of the header and n of the span (tried false: it declines).
// The rest goes by its SendFile, as a cache span's would.
type fakeSpan struct {
	data    []byte // what is left of the span
	head, n int
	tried   bool
	err     error // SendMapped's
}

func (f *fakeSpan) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func (f *fakeSpan) SendMapped(c syscall.RawConn, head []byte, limit int64) (int, int64, bool, error) {
	if !f.tried {
		return 0, 0, false, nil
	}
	hs, n := min(f.head, len(head)), min(f.n, len(f.data), int(limit))
	if err := rawWrite(c, append(append([]byte(nil), head[:hs]...), f.data[:n]...)); err != nil {
		return 0, 0, true, err
	}
	f.data = f.data[n:]
	return hs, int64(n), true, f.err
}

func (f *fakeSpan) SendFile(c syscall.RawConn, limit int64) (int64, error) {
	n := min(len(f.data), int(limit))
	if err := rawWrite(c, f.data[:n]); err != nil {
		return 0, err
	}
	f.data = f.data[n:]
	return int64(n), nil
}

// rawWrite writes b to c's socket, waiting for it as c.Write does.
func rawWrite(c syscall.RawConn, b []byte) error {
	var werr error
	err := c.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := syscall.Write(int(fd), b)
			switch {
			case err == syscall.EAGAIN:
				return false
			case err != nil:
				werr = err
				return true
			}
			b = b[n:]
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return err
}

// TestSendMappedPartial: whatever part of the held header and of the span
// the mapped attempt sent (all, none, part of the header, the header and
// part of the span), the rest follows by sendfile, each byte once and in
// order, and the connection holds nothing afterwards; a socket error of
// the attempt ends the copy.
func TestSendMappedPartial(t *testing.T) {
	hdr := []byte("HTTP/1.1 206 Partial Content\r\nContent-Length: 70000\r\n\r\n")
	body := bytes.Repeat([]byte("0123456789"), 7000)
	for _, tc := range []struct {
		name    string
		span    fakeSpan
		wantErr bool
	}{
		{"all at once", fakeSpan{head: len(hdr), n: len(body), tried: true}, false},
		{"socket full", fakeSpan{tried: true}, false},
		{"header cut", fakeSpan{head: 10, tried: true}, false},
		{"span cut", fakeSpan{head: len(hdr), n: 1000, tried: true}, false},
		{"declined", fakeSpan{}, false},
		{"socket error", fakeSpan{tried: true, err: syscall.ECONNRESET}, true}, // a failed writev sends nothing
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestFrontListener(t, time.Hour, 1<<20, 4)
			client, server := lingerPair(t, l)
			client.SetReadDeadline(time.Now().Add(30 * time.Second))
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			holdHeader(server)
			server.Write(hdr)
			span := tc.span
			span.data = body
			n, err := server.ReadFrom(&io.LimitedReader{R: &span, N: int64(len(body))})
			if tc.wantErr {
				if !errors.Is(err, syscall.ECONNRESET) || n != 0 {
					t.Fatalf("ReadFrom = %d, %v; want 0 and the socket's error", n, err)
				}
				return
			}
			if n != int64(len(body)) || err != nil {
				t.Fatalf("ReadFrom = %d, %v; want %d", n, err, len(body))
			}
			if server.held != nil {
				t.Fatal("the connection still holds header bytes")
			}
			server.Conn.Close()
			if b := <-got; !bytes.Equal(b, append(append([]byte(nil), hdr...), body...)) {
				t.Fatalf("the client received %d bytes, not the header then the body", len(b))
			}
		})
	}
}
