package testenv

import (
	"context"
	"os"
	"sync"
	"testing"
)

// server is what the test wrappers need of a started server.
type server interface{ Close() }

// starter is a server's core: start one with its files under dir.
type starter[S server] func(ctx context.Context, dir string) (S, error)

// shared is a server started once per test binary on first use, in its own
// temporary directory, and stopped by Main.
type shared[S server] struct {
	once sync.Once
	s    S
	err  error
}

func (sh *shared[S]) get(t testing.TB, name string, start starter[S]) S {
	t.Helper()
	sh.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgeproxy-"+name+"-")
		if err != nil {
			sh.err = err
			return
		}
		sh.s, sh.err = start(context.Background(), dir)
		registerShared(func() {
			if sh.err == nil {
				sh.s.Close()
			}
			os.RemoveAll(dir)
		})
	})
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.s
}

// dedicated starts a server for one test, in the test's temporary
// directory, and closes it when the test ends.
func dedicated[S server](t testing.TB, start starter[S]) S {
	t.Helper()
	s, err := start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
