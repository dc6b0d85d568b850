package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// newTransport returns a client transport that asks for no compression
// and keeps up to conns connections.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DisableCompression:    true,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		ResponseHeaderTimeout: 60 * time.Second,
	}
}

// fetch GETs url (with a Range header when rng is not empty) and returns
// the status and body, reading at most limit bytes of it.
func fetch(ctx context.Context, hc *http.Client, url, rng string, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, b, err
}

// drain GETs url and counts the body bytes without keeping them.
func drain(ctx context.Context, hc *http.Client, url string) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n, err
}

// warm reads every hot object fully twice through s, so the measured runs
// are cache hits (the 256 MiB object whole, so any range of it is cached).
func warm(ctx context.Context, s *server, objs []object) error {
	hc := &http.Client{Transport: newTransport(1), Timeout: 3 * time.Minute}
	defer hc.CloseIdleConnections()
	for range 2 {
		for _, o := range objs {
			status, n, err := drain(ctx, hc, s.URL(o.Key))
			if err != nil {
				return fmt.Errorf("harness: warm %s %s: %w", s.Name, o.Key, err)
			}
			if status != http.StatusOK || n != o.Size {
				return fmt.Errorf("harness: warm %s %s: status %d, %d bytes, want 200 and %d", s.Name, o.Key, status, n, o.Size)
			}
		}
	}
	return nil
}

// verify checks one whole small object and one unaligned 64 KiB range of
// the large one against the origin's bytes: a server must answer 206 with
// exactly that range, or its range figures mean nothing.
func verify(ctx context.Context, s *server, org *origin) error {
	hc := &http.Client{Transport: newTransport(1), Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	want, err := org.read(ctx, hot4K.Key, 0, hot4K.Size)
	if err != nil {
		return err
	}
	status, got, err := fetch(ctx, hc, s.URL(hot4K.Key), "", hot4K.Size+1)
	if err != nil {
		return fmt.Errorf("harness: verify %s: %w", s.Name, err)
	}
	if status != http.StatusOK || !bytes.Equal(got, want) {
		return fmt.Errorf("harness: verify %s %s: status %d, %d bytes, equal to origin %v", s.Name, hot4K.Key, status, len(got), bytes.Equal(got, want))
	}
	const off, span = 123_457, 64 << 10
	want, err = org.read(ctx, hot256M.Key, off, span)
	if err != nil {
		return err
	}
	rng := "bytes=" + strconv.Itoa(off) + "-" + strconv.Itoa(off+span-1)
	status, got, err = fetch(ctx, hc, s.URL(hot256M.Key), rng, span+1)
	if err != nil {
		return fmt.Errorf("harness: verify %s range: %w", s.Name, err)
	}
	if status != http.StatusPartialContent || !bytes.Equal(got, want) {
		return fmt.Errorf("harness: verify %s %s %s: status %d, %d bytes, equal to origin %v (want 206, %d bytes)",
			s.Name, hot256M.Key, rng, status, len(got), bytes.Equal(got, want), span)
	}
	return nil
}

// coldResult is one cold-miss run against one server.
type coldResult struct {
	Elapsed     time.Duration // from the release of all clients until the last finished
	OriginBytes int64         // counted by the server's relay, until it went quiet
}

// coldMiss releases clients concurrent GETs of the uncached object o at
// once and waits for all of them to read it completely.
func coldMiss(ctx context.Context, s *server, o object, clients int) (coldResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tr := newTransport(clients)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	before := s.relay.Bytes()
	start := make(chan struct{})
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, n, err := drain(ctx, hc, s.URL(o.Key))
			switch {
			case err != nil:
				errs <- err
			case status != http.StatusOK || n != o.Size:
				errs <- fmt.Errorf("status %d, %d bytes, want 200 and %d", status, n, o.Size)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := coldResult{Elapsed: time.Since(t0)}
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return res, fmt.Errorf("harness: cold miss on %s: %d of %d clients failed, first: %w", s.Name, len(all), clients, all[0])
	}
	// Fills may still be finishing (read-ahead); count them too.
	settle(ctx, s.relay, time.Second, 20*time.Second)
	res.OriginBytes = s.relay.Bytes() - before
	return res, nil
}

// settle waits until r has read nothing from the origin for quiet, at most
// for limit.
func settle(ctx context.Context, r *testenv.Relay, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, since := r.Bytes(), time.Now()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := r.Bytes(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}
