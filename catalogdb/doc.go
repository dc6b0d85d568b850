// Package catalogdb keeps the system of record of the download service in
// PostgreSQL: the file catalog (table files) and the access counts per
// file and hour (table file_access_counts). Redis and each node's memory
// are caches in front of it (auth.Catalog); this package is what they fall
// back to and what writes go to first.
//
// # Schema
//
// Versioned SQL files under migrations/ are embedded in the binary and
// applied by goose (Migrate; `edgectl db migrate` and edgeproxy at start
// with postgres.migrate). Concurrent migrations from several nodes
// serialise on goose's PostgreSQL session lock. Never change a released
// migration: add the next one.
//
// # Catalog
//
// A file's id is the BIGINT primary key; storage_path is "bucket/key"
// (bucket names hold no '/'); file_hash is the SHA-256 of the content and
// unique, so Put of content already stored returns the existing row
// (content addressing). Lookup implements auth.CatalogSource: Redis misses
// read here, with the caller's small budget.
//
// # Access-count sync
//
// Syncer moves the Redis counters into file_access_counts exactly once:
//
//  1. one syncer at a time across nodes: pg_try_advisory_lock on a
//     dedicated connection, held for the whole run (a crashed holder's
//     session ends and the lock with it);
//  2. an unfinished run left by a crash is finished first;
//  3. a new run gets an id and a pending hash in Redis; each counter is
//     moved into it by one Lua script (GET, DEL, HINCRBY), so every
//     increment is in the counter or in the pending hash, never in both
//     or neither;
//  4. the pending hash is sealed (later moves of a stale run fail) and its
//     counts committed in one transaction that also inserts the run id into
//     access_sync_runs; a replay finds the id and adds nothing;
//  5. the pending hash is deleted.
//
// A crash between any two steps leaves counts in the counters or in the
// pending hash, and the next run (on any node) completes them.
package catalogdb
