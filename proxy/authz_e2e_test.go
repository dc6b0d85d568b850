package proxy_test

// Tests of the authorization rules of issue 9: the configuration errors
// name real keys, a token is scoped to where it was minted, and on
// /download/ the token is checked before the catalog is consulted.

import (
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/proxy"
)

// TestNewNamesRealConfigKeys: a route that needs a backend the edge lacks
// is refused at start with an error naming the configuration key that
// provides it (redis.addrs for the token store; there is no auth.redis).
func TestNewNamesRealConfigKeys(t *testing.T) {
	o := newDirOrigin(t, dlBucket)
	for _, tt := range []struct {
		name string
		cfg  proxy.Config
		want string
	}{
		{"download token", proxy.Config{DownloadBucket: dlBucket, DownloadAuth: proxy.AuthToken}, "redis.addrs"},
		{"route token", proxy.Config{Routes: []proxy.RouteConfig{{Hosts: []string{"premium.example.com"}, Bucket: dlBucket, Auth: proxy.AuthToken}}}, "redis.addrs"},
		{"download signed", proxy.Config{DownloadBucket: dlBucket, DownloadAuth: proxy.AuthSigned}, "auth.signer.keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := proxy.New(tt.cfg, proxy.Deps{Origin: o.Store})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "auth.redis") {
				t.Fatalf("New: %v; want an error naming %s", err, tt.want)
			}
		})
	}
}
