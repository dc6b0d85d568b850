// Package limiter shapes and admits downloads per client on one edge node.
//
// nginx's limit_rate is per connection, so a download manager with eight
// connections gets eight times the rate. Here the unit is the client
// (ClientID: the user when known, else the address the proxy resolved
// through internal/clientip, IPv6 by /64): every
// download of one client on this node draws from one token bucket of bytes.
//
// # Flow
//
// The proxy calls ClientID, then Admit (concurrency caps and request rate;
// a refusal is a *Rejection with a Retry-After), then Shape on the response
// body, and releases the Lease when the body is closed. Shape returns the
// body untouched when nothing limits it, so unshaped downloads keep
// sendfile and pay nothing (BenchmarkShapeUnlimited).
//
// # Slices
//
// A shaped reader reads at most one slice (min(Burst, 64 KiB, a quarter
// second at the rate in effect)) from the body, reserves that many tokens on the client's bucket and on the node's
// bucket, sleeps for the longer of the two delays, then returns the bytes.
// Reading before reserving means the reservation is for the bytes actually
// read, and the reader never holds more than the one slice it is about to
// release. Slices never exceed a bucket's burst, so a reservation can always
// be met. The sleep takes a context cancelled by the reader's Close and by
// Limiter.Close: a client that hangs up leaves no goroutine waiting.
//
// # Fair share of GlobalRate
//
// GlobalRate is enforced by one node bucket, and each client with a
// download in progress has its own bucket capped at GlobalRate/n, n being
// the number of such clients. A lone client gets the whole rate; ten get a
// tenth each, however many connections each opens, because the cap is on
// the client's bucket, not on connections. The node bucket only matters in
// the moment after a client arrives, before the others' caps have dropped.
// The share is recomputed on every slice from an atomic count, so arrivals
// and departures take effect within one slice, at O(1) cost and without a
// scheduler goroutine. The cost of that simplicity: the scheme is not work
// conserving. A client that cannot use its share (slow network, own rate
// below the share) leaves the rest unused rather than giving it to others;
// a client whose own rate is lower than its share keeps its own rate. A
// deficit round robin over per-client queues would redistribute, at the
// price of a central scheduler every slice passes through; the uplink cap
// is a safety limit, so under-filling it is the acceptable failure.
//
// # State
//
// Client entries live in one map and an LRU list of idle clients (those
// with no lease). Clients with a lease are never evicted, so their buckets
// stay shared; idle ones are dropped after IdleTTL (two per Admit, and by a
// janitor when the node is quiet) or when MaxClients is reached. An entry
// costs about 115 bytes, 280 with both buckets (TestMemoryPerClient).
//
// # Clock
//
// Buckets read the clock New is given; shaped readers wait through a sleep
// function (WithSleep). Tests drive simulated seconds with a fake clock or
// testing/synctest and never sleep.
//
// # Cluster-wide request rate
//
// With WithRedis, RequestRate is also enforced across nodes by GCRA in one
// Lua script per admission, keyed per client and timed by Redis's clock.
// The local limit is always checked first; when Redis fails or exceeds its
// budget (20 ms by default) the request is decided locally and Redis is left
// alone for a backoff, so an outage never blocks downloads.
package limiter
