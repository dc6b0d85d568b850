package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/catalogdb"
)

// catalogDB is the wired PostgreSQL side: nil parts when not configured.
type catalogDB struct {
	pool   *pgxpool.Pool
	store  *catalogdb.Store
	syncer *catalogdb.Syncer
}

// buildCatalogDB opens the pool (without connecting) and, with
// postgres.migrate, migrates. PostgreSQL being down at start is not an
// error: the node serves what Redis holds and reconnects by itself.
func (a *app) buildCatalogDB(cfg Config) error {
	pc := cfg.Postgres
	if pc.DSN == "" {
		return nil
	}
	pool, err := catalogdb.Open(pc.Config)
	if err != nil {
		return usageError{fmt.Errorf("config: postgres: %w", err)}
	}
	a.closes = append(a.closes, func() error { pool.Close(); return nil })
	// Bounded: a node must start (and serve from Redis) with PostgreSQL down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if pc.Migrate {
		if applied, err := catalogdb.Migrate(ctx, pool); err != nil {
			a.log.Warn("postgres: migration failed; the catalog reads what the schema allows", "err", err)
		} else if len(applied) > 0 {
			a.log.Info("postgres: migrations applied", "versions", applied)
		}
	} else if cur, latest, err := catalogdb.SchemaVersion(ctx, pool); err == nil && cur < latest {
		a.log.Warn("postgres: schema is behind this binary; run edgectl db migrate", "current", cur, "latest", latest)
	}
	a.db = &catalogDB{pool: pool, store: catalogdb.NewStore(pool)}
	a.proxyDeps.CatalogStore = a.db.store
	a.adminDeps.Synced = a.db.store
	return nil
}

// buildCatalog makes the file catalog: Redis hashes, backed by PostgreSQL
// when configured (reads fall back to it, admin writes go to it first and
// every node's copies are invalidated).
func (a *app) buildCatalog(cfg Config, rdb redis.UniversalClient) error {
	var opts []auth.CatalogOption
	if a.db != nil {
		opts = append(opts, auth.WithSource(a.db.store))
	}
	c, err := auth.NewCatalog(cfg.Auth.Catalog.CatalogConfig, rdb, a.root, opts...)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	a.proxyDeps.Catalog = c
	a.adminDeps.Catalog = c
	if a.db != nil {
		d := dbCatalogAdmin{store: a.db.store, catalog: c}
		a.adminDeps.Catalog = d
		a.adminDeps.CatalogStore = d
		a.loops = append(a.loops, func(ctx context.Context) { c.Listen(ctx, nil) })
	}
	return nil
}

// buildSync moves the Redis access counters into PostgreSQL on a schedule,
// when both are configured.
func (a *app) buildSync(cfg Config) error {
	if a.db == nil || a.stats == nil {
		return nil
	}
	sy, err := catalogdb.NewSyncer(cfg.Postgres.Sync, a.db.pool, a.stats, a.root)
	if err != nil {
		return usageError{fmt.Errorf("config: postgres.sync: %w", err)}
	}
	a.db.syncer = sy
	a.loops = append(a.loops, sy.Loop)
	return nil
}

// dbCatalogAdmin is the admin API's view of a catalog whose system of
// record is PostgreSQL: writes go to PostgreSQL first, then every node's
// Redis and memory copies are invalidated; reads come from PostgreSQL.
type dbCatalogAdmin struct {
	store   *catalogdb.Store
	catalog *auth.Catalog
}

func (d dbCatalogAdmin) Lookup(ctx context.Context, id string) (auth.FileMeta, error) {
	return d.store.Lookup(ctx, id)
}

func (d dbCatalogAdmin) Put(ctx context.Context, m auth.FileMeta) error {
	_, _, err := d.Create(ctx, m)
	return err
}

// Create stores m (a new id unless m.ID is set; the existing row when
// m.SHA256 is known) and invalidates the caches of its id.
func (d dbCatalogAdmin) Create(ctx context.Context, m auth.FileMeta) (auth.FileMeta, bool, error) {
	got, created, err := d.store.Put(ctx, m)
	if errors.Is(err, catalogdb.ErrInvalid) {
		return got, false, fmt.Errorf("%w: %w", auth.ErrInvalidSpec, err)
	}
	if err != nil {
		return got, false, err
	}
	return got, created, d.invalidate(ctx, got.ID)
}

func (d dbCatalogAdmin) List(ctx context.Context, after int64, limit int) ([]auth.FileMeta, error) {
	return d.store.List(ctx, after, limit)
}

func (d dbCatalogAdmin) ByHash(ctx context.Context, hash string) (auth.FileMeta, error) {
	return d.store.ByHash(ctx, hash)
}

func (d dbCatalogAdmin) Delete(ctx context.Context, id string) error {
	if err := d.store.Delete(ctx, id); err != nil {
		return err
	}
	return d.invalidate(ctx, id)
}

// invalidate drops id from Redis and every node's memory. PostgreSQL is
// already changed: a failure here leaves copies that expire by their TTLs
// (auth.catalog.cache_ttl, redis_ttl), so it is reported, not undone.
func (d dbCatalogAdmin) invalidate(ctx context.Context, id string) error {
	if err := d.catalog.Invalidate(ctx, id); err != nil {
		return fmt.Errorf("catalog written; cache invalidation failed (copies expire by their TTL): %w", err)
	}
	return nil
}
