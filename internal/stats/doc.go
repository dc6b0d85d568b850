// Package stats records what the edge serves, for the application backends:
// access counts and a hot set, the progress of each download task, and a
// log of finished transfers, all in Redis.
//
// The proxy calls Access and StartTransfer once per download and feeds the
// returned Transfer as bytes reach the client. None of these wait for
// Redis: they update memory (a sharded map, atomics, short locks) and
// bounded queues, and background goroutines write to Redis in pipelined
// batches. When Redis is slow or down, the queues fill and further entries
// are dropped and counted (Stats, Collectors); downloads never slow down.
//
// # Access counts
//
// Access increments an in-memory counter per file. Every FlushInterval one
// pipeline writes, per file seen, INCRBY file:access:<id> n, EXPIRE
// AccessTTL and ZINCRBY <HotKey> n <id>: three commands per distinct file
// per second, whatever the request rate. A failed flush keeps its counts
// for the next, bounded by MaxPending distinct files (delivery is at least
// once: a flush whose reply is lost is counted again). The hot set is
// cumulative, or decays daily with HotDaily. Backends read counters with
// Count or move them into their database with ReadAndReset (GET and DEL in
// one script); Hot returns the top of the hot set.
//
// # Download tasks
//
// A task is one token downloading one file; its id is TaskID(token, file),
// which backends compute too (a transfer without a token has no task: it
// is only logged), and its state is the hash
// download:task:<TaskID> with fields status, bytes_delivered, bytes_total,
// file_id, user_id, node, updated_at (Unix ms), expiring ProgressTTL after
// the last update. bytes_delivered counts distinct bytes: every response
// adds the spans of the file it delivered to a per-task set of merged
// spans, so eight parallel range requests, overlapping retries and resumes
// all add up to the file size exactly once. Only bytes the connection
// accepted count: a multipart/byteranges response adds each part's range
// (TransferInfo.Parts; part headers are not file bytes), and a response cut
// short adds the prefix that was written. COMPLETED therefore means every
// byte of the file reached the client at least once (up to what the
// kernel's socket buffer held when a connection broke, which no server can
// see). A finished transfer's last bytes are written by the next sweep
// when they are not yet due, so the hash does not stay behind. Status changes (see Status) are published on
// ProgressChannel as JSON {task_id, file_id, user_id, status,
// bytes_delivered, bytes_total}. The write is a Lua script that compares
// with the stored status, so COMPLETED is published once per task even
// across retries, evictions and nodes.
//
// Writes are throttled per task: always on a status change; otherwise
// every ProgressInterval while bytes arrive, or after 5% of the file but
// no sooner than ProgressInterval/10 after the previous write.
//
// Tracking is per edge node. Spans live in this node's memory; a download
// split across nodes is counted by each node for the bytes it served, and
// the hash keeps the larger count, so it may stay below 100% (and never
// reach COMPLETED) although the client has every byte. Routing a token's
// requests to one node (hashing on the token or client at the load
// balancer) avoids this. Merging spans through Redis would cost a script
// run carrying the span list per update; not done while routing can
// avoid the case.
//
// # Download log
//
// Each finished or aborted transfer is XADDed to LogStream (MAXLEN ~
// LogMaxLen) from a bounded queue, in batches (a script XADDs up to 128
// entries per run; the runs are pipelined), with the fields time (RFC
// 3339, UTC, ms), node, task_id (empty for a transfer without a token),
// user_id, file_id, route, off and len (the range of the file the
// response carried; off is -1 for a multipart response and len the total
// of its parts), bytes (file bytes delivered), status ("completed" or "aborted":
// this response, not the task), duration_ms (from TransferInfo.Start),
// cache and client_ip. The log is best effort: entries are dropped and
// counted when the queue is full or a write fails. The background writers
// let a batch gather for 5 ms after its first item, so an entry or a task
// update reaches Redis at most that much later than it would otherwise.
package stats
