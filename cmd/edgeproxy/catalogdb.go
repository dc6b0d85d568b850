package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/catalogdb"
)

// PostgresConfig is the postgres section: the system of record of the
// catalog and of access counts. No DSN: no PostgreSQL, and the catalog is
// Redis alone (file:meta:<id> hashes), as before.
type PostgresConfig struct {
	// DSN, pool size and timeouts; prefer EDGEPROXY_POSTGRES_DSN for the
	// DSN, which holds a password.
	catalogdb.Config `yaml:",inline"`
	// Migrate applies the embedded schema migrations at start (nodes
	// starting together wait for each other). Default false: run
	// `edgectl db migrate` once per release instead, and a node whose
	// schema is behind logs a warning.
	Migrate bool `yaml:"migrate"`
	// Sync moves the Redis access counters into PostgreSQL; needs stats.
	Sync catalogdb.SyncConfig `yaml:"sync"`
}

// catalogDB is the wired PostgreSQL side: nil parts when not configured.
type catalogDB struct {
	pool   *pgxpool.Pool
	store  *catalogdb.Store
	syncer *catalogdb.Syncer
}

// buildCatalogDB opens the pool (without connecting) and, with
// postgres.migrate, migrates. PostgreSQL being down at start is not an
// error: the node serves what Redis holds and reconnects by itself.
func (a *app) buildCatalogDB(cfg PostgresConfig) (*catalogDB, error) {
	if cfg.DSN == "" {
		return nil, nil
	}
	pool, err := catalogdb.Open(cfg.Config)
	if err != nil {
		return nil, usageError{fmt.Errorf("config: postgres: %w", err)}
	}
	a.closes = append(a.closes, func() error { pool.Close(); return nil })
	// Bounded: a node must start (and serve from Redis) with PostgreSQL down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.Migrate {
		if applied, err := catalogdb.Migrate(ctx, pool); err != nil {
			a.log.Warn("postgres: migration failed; the catalog reads what the schema allows", "err", err)
		} else if len(applied) > 0 {
			a.log.Info("postgres: migrations applied", "versions", applied)
		}
	} else if cur, latest, err := catalogdb.SchemaVersion(ctx, pool); err == nil && cur < latest {
		a.log.Warn("postgres: schema is behind this binary; run edgectl db migrate", "current", cur, "latest", latest)
	}
	return &catalogDB{pool: pool, store: catalogdb.NewStore(pool)}, nil
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
