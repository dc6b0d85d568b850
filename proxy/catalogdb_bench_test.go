package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/catalogdb"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// catalogBench is a PostgreSQL-backed catalog in front of Redis, with one
// file (id 1 -> b/obj) registered.
type catalogBench struct {
	store *catalogdb.Store
	rdb   *redis.Client
	id    string
}

func newCatalogBench(b *testing.B) *catalogBench {
	b.Helper()
	pg := testenv.NewPostgres(b)
	pool, err := catalogdb.Open(catalogdb.Config{DSN: pg.DSN})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	ctx := context.Background()
	if _, err := catalogdb.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	st := catalogdb.NewStore(pool)
	m, _, err := st.Put(ctx, auth.FileMeta{Bucket: "b", Key: "obj", Filename: "obj.bin", Size: 4 << 10, ContentType: "application/octet-stream"})
	if err != nil {
		b.Fatal(err)
	}
	rdb := testenv.NewRedis(b).Client(b)
	return &catalogBench{store: st, rdb: rdb, id: m.ID}
}

// BenchmarkCatalogHit compares a hot 4 KiB cache hit addressed by object
// key (plain) with the same hit resolved through the PostgreSQL-backed
// catalog (an entry in process memory, as a hot file's is). Issue target:
// catalog within 5% of plain.
func BenchmarkCatalogHit(b *testing.B) {
	cb := newCatalogBench(b)
	for _, v := range []string{"plain", "catalog"} {
		b.Run("4KiB/"+v, func(b *testing.B) {
			h := newCatalogHitBench(b, cb, v == "catalog")
			b.ReportAllocs()
			b.SetBytes(4 << 10)
			b.ResetTimer()
			for range b.N {
				h.do(b)
			}
		})
	}
}

func newCatalogHitBench(b *testing.B, cb *catalogBench, withCatalog bool) *hitBench {
	b.Helper()
	cfg, deps, c := newHitProxy(b, 4<<10)
	uri := "/download/obj"
	if withCatalog {
		cat, err := auth.NewCatalog(auth.CatalogConfig{CacheTTL: time.Hour}, cb.rdb, deps.Logger, auth.WithSource(cb.store))
		if err != nil {
			b.Fatal(err)
		}
		deps.Catalog = cat
		cfg.DownloadBucket = ""
		uri = "/download/" + cb.id
	}
	return startHitBench(b, cfg, deps, c, uri, "")
}

// BenchmarkCatalogLookup measures one catalog lookup that misses process
// memory: served by Redis (redis-hit), or missing in Redis too and read
// from PostgreSQL, then written back to Redis (cold).
func BenchmarkCatalogLookup(b *testing.B) {
	cb := newCatalogBench(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat, err := auth.NewCatalog(auth.CatalogConfig{CacheTTL: -1, NegativeTTL: -1, Timeout: time.Second, SourceTimeout: time.Second},
		cb.rdb, log, auth.WithSource(cb.store))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("redis-hit", func(b *testing.B) {
		if _, err := cat.Lookup(ctx, cb.id); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := cat.Lookup(ctx, cb.id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold-postgres", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			cb.rdb.Del(ctx, "file:meta:"+cb.id)
			b.StartTimer()
			if _, err := cat.Lookup(ctx, cb.id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
