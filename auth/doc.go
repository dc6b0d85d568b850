// Package auth decides who may download what: it verifies download tokens
// kept in Redis (Verifier), signed URLs that need no Redis (Signer), and
// looks up the file a download refers to (Catalog). It has no HTTP types;
// refusals are *Error values carrying a code and the status to answer with.
//
// # Tokens
//
// A token's record lives at "download:token:<token>" either as a URL-encoded
// string written by existing backends or as a hash written by Create (see
// Record). Verify answers from a short-lived in-process cache (default 5s)
// when it can and otherwise asks Redis within a small budget (default 50ms).
//
// # What a token opens
//
// A token opens the one file its file_id names, in the namespace it was
// minted for; Verify compares file_id with the id the proxy derives from
// the request, byte for byte:
//
//   - GET /download/{id}: the id itself, a catalog id or (without a
//     catalog) a key of the download bucket. The string form that backends
//     write, file_id=10086, lives here.
//   - a host route (proxy.routes) serving bucket B: "/B/key", the object's
//     path-style name (ObjectFileID). The admin API and edgectl token create
//     mint it when given a bucket.
//
// The two never overlap: the proxy refuses request paths that begin with
// '/' or contain empty segments, so no /download/ id begins with '/', and
// bucket names contain no '/'. A token minted for /download/report.pdf (or
// for /download/premium/report.pdf) therefore never opens report.pdf on the
// host of bucket premium, and a token for one bucket never opens the same
// key in another: both are token_wrong_file. A catalog entry may point into
// any bucket; its token still names the catalog id, since the catalog, not
// the client, chose the object.
//
// # Failing closed
//
// When Redis is unreachable or slower than the budget, Verify refuses with
// auth_unavailable and a Retry-After instead of letting downloads through:
// a token store outage must not turn one-time and IP-bound links into open
// ones. Lookups in flight are bounded (Config.MaxInFlight) and the excess is
// refused at once, so an outage costs neither goroutines nor memory. Sites
// that prefer availability can set FailOpenCached, which serves tokens read
// in the last FailOpenMaxAge (never tokens with max_uses).
//
// # What counts as a use
//
// A token with max_uses allows that many download sessions, not that many
// requests, because download managers (aria2, browsers resuming a download)
// fetch one file with many range requests, in parallel and after pauses.
//
// A download session is identified by the token, the file id and the
// client's network: its IPv4 address, or the /64 prefix of its IPv6 address
// (privacy addresses rotate within a /64). With Config.SessionIgnoreIP the
// network is left out, and token plus file alone identify the session.
//
// A session lasts while its requests keep coming: each request that passes
// the token, file and allowed_ip checks renews it, and it ends after
// Config.SessionIdle (default 10 minutes) without any request. The request
// that opens a session consumes one use; every later request of the same
// session, including parallel ranges, retries and resumptions within the
// idle window, is free. A request that would open a new session once
// max_uses sessions have been opened is refused with uses_exhausted, while
// sessions already open keep working until they go idle.
//
// So with max_uses=1, one client can download the file with any number of
// connections and resume after pauses shorter than the idle window; the same
// link used from another network, or after a longer pause, is refused.
// Refused requests (wrong file, wrong IP, expired) never consume a use.
//
// The count lives in the token's own hash ("uses" and one
// "session_<id>" field per session holding its last-seen time, unix ms) and
// is changed by a single Lua script touching only that key, so it is atomic
// across edge nodes and works on Redis Cluster. Nodes compare their own
// clocks with the stored last-seen times, so clock skew between nodes
// shortens or lengthens the idle window by the skew.
//
// # Revocation
//
// Revoke deletes the key and publishes the token on a channel every
// Verifier listens to; each drops it from its cache within a second. A
// listener that loses its connection purges its whole cache when it
// reconnects, since Pub/Sub does not replay messages.
//
// # Throttling
//
// Failed checks (token_invalid, token_wrong_file, and through
// Verifier.Failed a /download/ id the catalog does not know) are counted per
// client address (IPv6: per /64); past Config.FailuresPerMinute in a
// minute, every check from that client is refused with too_many_attempts
// until the minute ends. The table of clients is a bounded LRU.
//
// # The catalog comes after the token
//
// The proxy verifies a token against the requested /download/ id before it
// reads the catalog, so without a valid token an existing and an unknown id
// get the same answer, and the catalog is read only for ids a token names
// (an authorised request for an id the catalog lacks is 404). On routes
// without tokens, a client past its failure limit is refused before any
// read, and the Catalog remembers ids found missing for
// CatalogConfig.NegativeTTL (default 5s) in a bounded table, so guessing
// ids costs Redis at most the failure limit per client and minute.
//
// # The catalog's system of record
//
// With WithSource (PostgreSQL through catalogdb), Redis is a cache: a miss,
// or a Redis failure, reads the source within SourceTimeout and writes the
// record back to Redis for RedisTTL; the source failing makes the lookup an
// error (503), never ErrFileNotFound. Writers change the source first and
// then call Invalidate, which deletes the Redis entry and publishes the id;
// every Catalog running Listen drops it from memory, and purges its memory
// whenever its subscription is (re)established, since Pub/Sub does not
// replay messages.
package auth
