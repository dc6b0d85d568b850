package auth

import "strings"

// ObjectFileID is the file id a token must carry to open key in bucket
// through a host route: "/<bucket>/<key>", the path-style name of the
// object. Ids of the /download/ namespace (catalog ids and keys of the
// download bucket) never begin with '/', since the proxy refuses such
// paths, so a token minted for /download/<anything> can never open an
// object on a host route, and a token for one bucket never opens the same
// key in another (see "What a token opens" in the package documentation).
func ObjectFileID(bucket, key string) string {
	return "/" + bucket + "/" + key
}

// IsObjectFileID reports whether id has the host-route form of
// ObjectFileID rather than being a /download/ id.
func IsObjectFileID(id string) bool {
	return strings.HasPrefix(id, "/")
}
