package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgresKillStart(t *testing.T) {
	pg := NewPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE t (v int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	pg.Kill(t)
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("query succeeded against a killed server")
	}
	pg.Start(t)
	// Committed data survives the crash (crash recovery, same address).
	if err := exec(`INSERT INTO t SELECT v + 1 FROM t`); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)
	pg.Start(t)
	if err := exec(`DO $$ BEGIN IF (SELECT count(*) FROM t) <> 2 THEN RAISE 'lost rows'; END IF; END $$`); err != nil {
		t.Fatal(err)
	}
}
