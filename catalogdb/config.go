package catalogdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Config configures the PostgreSQL connection; the zero value means the
// defaults, except DSN which is required.
type Config struct {
	// DSN is a libpq connection string or postgres:// URL. Keep the
	// password out of config files: EDGEPROXY_POSTGRES_DSN, or PGPASSWORD
	// and ~/.pgpass, which pgx reads. Required.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the pool. The request path uses it only on Redis
	// misses and the sync holds one connection while it runs. Default 8.
	MaxConns int32 `yaml:"max_conns"`
	// StatementTimeout is set as the server's statement_timeout on every
	// connection, so a statement the client gave up on does not run on.
	// Default 5s.
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	// ConnectTimeout bounds establishing one connection. Default 2s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the key at fault.
func (c Config) withDefaults() (Config, error) {
	if c.MaxConns == 0 {
		c.MaxConns = 8
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 5 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 2 * time.Second
	}
	switch {
	case c.DSN == "":
		return c, errors.New("catalogdb: config dsn: required")
	case c.MaxConns < 2:
		return c, fmt.Errorf("catalogdb: config max_conns=%d: at least 2 (the sync holds one)", c.MaxConns)
	case c.StatementTimeout < 0:
		return c, fmt.Errorf("catalogdb: config statement_timeout=%v: must be positive", c.StatementTimeout)
	case c.ConnectTimeout < 0:
		return c, fmt.Errorf("catalogdb: config connect_timeout=%v: must be positive", c.ConnectTimeout)
	}
	return c, nil
}

// Open validates cfg and returns a pool. It does not connect: connections
// are made on first use, so a node starts while PostgreSQL is down and
// serves what Redis and memory hold.
func Open(cfg Config) (*pgxpool.Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's error can quote the DSN, password included: do not wrap it.
		return nil, errors.New("catalogdb: config dsn: not a valid connection string")
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(cfg.StatementTimeout.Milliseconds())
	pc.ConnConfig.RuntimeParams["application_name"] = "edgeproxy"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("catalogdb: open pool: %w", err)
	}
	return pool, nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockID is goose's session lock key for our migrations.
const migrateLockID = 0x65646765_00000001 // "edge", 1

// Migrate applies every embedded migration not yet applied and returns the
// versions it applied. Nodes migrating at once wait for each other.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int64, error) {
	p, err := provider(pool)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalogdb: migrate: %w", err)
	}
	out := make([]int64, 0, len(res))
	for _, r := range res {
		out = append(out, r.Source.Version)
	}
	return out, nil
}

// SchemaVersion returns the applied schema version and the newest one
// this binary knows; the node's catalog needs them equal.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (current, latest int64, err error) {
	p, err := provider(pool)
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("catalogdb: schema version: %w", err)
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	return current, latest, nil
}

// provider returns goose's provider over a database/sql view of pool;
// the caller closes it (the pool stays open).
func provider(pool *pgxpool.Pool) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrateLockID))
	if err != nil {
		return nil, fmt.Errorf("catalogdb: migrate lock: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("bug: catalogdb: embedded migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true),
		goose.WithTableName("edgeproxy_schema_version"))
	if err != nil {
		return nil, fmt.Errorf("catalogdb: migrations: %w", err)
	}
	return p, nil
}
