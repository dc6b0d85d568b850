package demo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestStartMintsTokensForTheFiles(t *testing.T) {
	e, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, f := range []struct{ name, token string }{{"hello.txt", e.HelloToken}, {"demo.bin", e.DemoToken}} {
		if _, err := os.Stat(filepath.Join(e.Root, Bucket, f.name)); err != nil {
			t.Errorf("demo file %s: %v", f.name, err)
		}
		c := testenv.NewRedisClient(e.RedisAddr)
		v, err := c.Get(context.Background(), "download:token:"+f.token).Result()
		c.Close()
		if want := "file_id=" + f.name + "&user_id=demo"; err != nil || v != want {
			t.Errorf("token record for %s = %q, %v; want %q", f.name, v, err, want)
		}
	}
	e.Close()
	if _, err := os.Stat(e.Root); !os.IsNotExist(err) {
		t.Errorf("Close left %s behind (%v)", e.Root, err)
	}
}
