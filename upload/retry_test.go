package upload_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/edgeproxy/edgeproxy/origin"
	"github.com/edgeproxy/edgeproxy/upload"
)

// faultNode stands for one node of a distributed MinIO in front of the
// test's single MinIO: it passes every request through, except part
// uploads (PUT with partNumber), which refuse answers. It counts the part
// uploads it saw by part number.
type faultNode struct {
	addr   string
	mu     sync.Mutex
	parts  map[string]int
	refuse func(w http.ResponseWriter) // nil: pass part uploads through
}

func newFaultNode(t *testing.T, minioAddr string, refuse func(w http.ResponseWriter)) *faultNode {
	t.Helper()
	target, err := url.Parse("http://" + minioAddr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the signed Host header
	f := &faultNode{parts: map[string]int{}, refuse: refuse}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := r.URL.Query().Get("partNumber"); r.Method == http.MethodPut && n != "" {
			f.mu.Lock()
			f.parts[n]++
			f.mu.Unlock()
			if f.refuse != nil {
				f.refuse(w)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	f.addr = strings.TrimPrefix(ts.URL, "http://")
	return f
}

func (f *faultNode) partPuts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.parts))
	for k, v := range f.parts {
		m[k] = v
	}
	return m
}

// resetConn drops the connection without an answer, as a node killed
// while a part streams to it.
func resetConn(w http.ResponseWriter) { panic(http.ErrAbortHandler) }

// twoNodes points the env's origin at a dying node and a healthy one and
// returns a node of the edge whose upload endpoint writes through store,
// so that the test reads the pool's view of each node.
func twoNodes(t *testing.T, e *env, dying, healthy *faultNode) (*node, *origin.S3) {
	t.Helper()
	e.origin.Endpoint = ""
	e.origin.Endpoints = []string{dying.addr, healthy.addr}
	store, err := origin.NewS3(e.origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return e.nodeWith(e.config(), func(d *upload.Deps) { d.S3 = store }), store
}

// TestTusPartFailsOver: one node of the origin drops every part upload
// (a node killed mid-part). Each part it drops is sent again at once to
// the other node, from the spool, within the same PATCH: the PATCH
// succeeds in one go with the exact bytes, no part is sent twice to the
// dying node, and the pool counts the dying node's failures (so that it
// ejects it), which the upload endpoint's own retry loop never told it.
func TestTusPartFailsOver(t *testing.T) {
	const part = 5 << 20
	e := newEnv(t)
	dying := newFaultNode(t, e.origin.Endpoint, resetConn)
	healthy := newFaultNode(t, e.origin.Endpoint, nil)
	n, store := twoNodes(t, e, dying, healthy)

	data := make([]byte, 6*part+123)
	io.ReadFull(newGen(int64(len(data))), data)
	tok := e.token(n.Uploads, upload.Grant{Key: "failover/a", FileID: "failover-a"})
	loc := n.URL + create(t, n, tok, int64(len(data)))
	resp, body := patch(t, loc, tok, 0, data)
	wantStatus(t, resp, body, 204, "")

	dropped := dying.partPuts()
	if len(dropped) == 0 {
		t.Fatal("no part went to the dying node: the test proves nothing")
	}
	for num, k := range dropped {
		if k != 1 {
			t.Errorf("part %s was sent %d times to the dying node, want once (then the other node)", num, k)
		}
	}
	if got := healthy.partPuts(); len(got) != 7 {
		t.Errorf("the healthy node stored parts %v, want all 7 (the last is the 123-byte tail)", got)
	}
	st := store.Endpoints()
	if st[0].Failures != int64(len(dropped)) {
		t.Errorf("pool saw %d failures of the dying node, want %d (one per dropped part)", st[0].Failures, len(dropped))
	}
	if st[1].Failures != 0 {
		t.Errorf("pool counted %d failures of the healthy node", st[1].Failures)
	}
	wantDownload(t, n, "failover-a", data)
	e.wantClean()
}

// TestTusPartPermanentError: a part refused with AccessDenied (403) is not
// sent again, to either node: the PATCH fails with 502 origin_unavailable
// and the offset stays at what is durable.
func TestTusPartPermanentError(t *testing.T) {
	const part = 5 << 20
	e := newEnv(t)
	denied := newFaultNode(t, e.origin.Endpoint, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`)
	})
	healthy := newFaultNode(t, e.origin.Endpoint, nil)
	n, store := twoNodes(t, e, denied, healthy)

	data := make([]byte, 2*part+123)
	io.ReadFull(newGen(int64(len(data))), data)
	tok := e.token(n.Uploads, upload.Grant{Key: "denied/a"})
	loc := n.URL + create(t, n, tok, int64(len(data)))
	resp, body := patch(t, loc, tok, 0, data)
	wantStatus(t, resp, body, http.StatusBadGateway, "origin_unavailable")
	refused := denied.partPuts()
	if len(refused) == 0 {
		t.Fatal("no part went to the refusing node: the test proves nothing")
	}
	stored := healthy.partPuts()
	for num, k := range refused {
		if k != 1 || stored[num] != 0 {
			t.Errorf("part %s refused with 403 was sent %d times to the refusing node and %d to the other, want 1 and 0", num, k, stored[num])
		}
	}
	if f := store.Endpoints()[0].Failures; f != 0 {
		t.Errorf("a 403 counted as %d failures of the node, want 0 (it is an answer)", f)
	}
	if off := offset(t, loc, tok); off != 0 {
		t.Errorf("offset %d after the refused PATCH, want 0", off)
	}
}
