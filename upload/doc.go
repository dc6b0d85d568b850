// Package upload is the edge's tus 1.0.0 resumable upload endpoint: tus
// requests on the download listener (under Config.Prefix, handed over by
// proxy.Deps.Uploads) become S3 multipart uploads in the origin.
//
// # The rules
//
//   - Any node answers any request. An upload's state (offset, our own
//     list of parts, the staged tail, the SHA-256 state of the bytes so
//     far, expiry) is JSON at <key_prefix>state:<id> in Redis; nothing
//     about an upload lives only on one node.
//   - One writer per upload: PATCH, DELETE and completion hold
//     <key_prefix>lock:<id> (SET NX with a TTL, renewed while held,
//     compare-and-delete on release). A second writer gets 423.
//   - The offset is never ahead of S3. The lock holder writes the state
//     only after the parts and the staged tail it names are stored.
//   - Parts are Config.PartSize, cut from a local spool file; bytes that
//     do not fill a part stay, between requests, in the staging object
//     <staging_prefix><id> in the upload's bucket, named in the state by
//     length and ETag.
//   - Every idempotent S3 call of a PATCH (each part, the staged tail's
//     GET, PUT and DELETE) goes through Store.Do, origin's one policy for
//     retries: a transient failure is sent again at once to a node not
//     tried yet, then after a back-off; a final answer (4xx, timeout) is
//     not retried, and the pool hears of every failure. A part's body is
//     a fresh section of the spool at each attempt.
//   - A PATCH cut off keeps what arrived (the client resumes from HEAD);
//     a PATCH with Upload-Checksum keeps nothing unless its digest matches.
//   - Refusals come first: no token, a bad or expired signed URL, a bucket
//     or size the token or signature does not allow, malformed headers are
//     answered before a multipart upload exists, so no refusal leaves one
//     behind.
//   - A creation is authorised by an upload token (Redis) or a signed URL
//     (Deps.Signer, no Redis); everything after it by the upload's state,
//     which keeps a hash of the credential: the token, or the URL's
//     signature, which the Location of a signed creation carries as ?token=.
//   - Completion checks the declared sha256 before CompleteMultipartUpload,
//     registers the file in the catalog and purges the old version on every
//     node (Config.PurgeChannel, Subscribe).
//   - What is abandoned is removed: expired uploads answer 404, and the
//     janitor (Run, Sweep) aborts multipart uploads and deletes staging
//     objects older than Config.Expiry that no live upload owns.
//
// Upload ids are 192 random bits; requests need the creating credential as
// well, so an id alone opens nothing. Logs show ids shortened and never tokens.
package upload
