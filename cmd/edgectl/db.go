package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/edgeproxy/edgeproxy/catalogdb"
)

// dbMigrate applies the schema migrations embedded in this binary. It
// talks to PostgreSQL directly (the admin API has no schema route): the
// DSN, which holds a password, comes from the environment only.
func dbMigrate(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("db migrate", "",
		"Applies the catalog's schema migrations embedded in this binary to PostgreSQL and prints\n"+
			"{\"applied\":[versions],\"version\":N}. Safe to run from several places at once (a lock\n"+
			"serialises them) and again (nothing to do). The DSN comes from $EDGECTL_POSTGRES_DSN,\n"+
			"else $EDGEPROXY_POSTGRES_DSN.")
	if err := cmd.parse(args); err != nil {
		return err
	}
	if len(cmd.fs.Args()) > 0 {
		return cmd.usagef("no arguments expected")
	}
	dsn := getenv(x.environ, "EDGECTL_POSTGRES_DSN")
	if dsn == "" {
		dsn = getenv(x.environ, "EDGEPROXY_POSTGRES_DSN")
	}
	if dsn == "" {
		return cmd.usagef("set $EDGECTL_POSTGRES_DSN (or $EDGEPROXY_POSTGRES_DSN)")
	}
	pool, err := catalogdb.Open(catalogdb.Config{DSN: dsn})
	if err != nil {
		return usagef("db migrate: %v", err)
	}
	defer pool.Close()
	applied, err := catalogdb.Migrate(ctx, pool)
	if err != nil {
		return fmt.Errorf("db migrate: %w", err)
	}
	cur, _, err := catalogdb.SchemaVersion(ctx, pool)
	if err != nil {
		return fmt.Errorf("db migrate: %w", err)
	}
	if applied == nil {
		applied = []int64{}
	}
	return json.NewEncoder(x.stdout).Encode(map[string]any{"applied": applied, "version": cur})
}
