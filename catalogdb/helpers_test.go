package catalogdb

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/edgeproxy/edgeproxy/internal/stats"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newDB starts a PostgreSQL of its own, migrated, and returns it with a
// pool closed when the test ends.
func newDB(t testing.TB) (*testenv.PostgresServer, *pgxpool.Pool) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	pool, err := Open(Config{DSN: pg.DSN, StatementTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pg, pool
}

// newCounters returns a Recorder on a Redis of its own (the sync scans
// every counter of the server), flushed only explicitly.
func newCounters(t testing.TB) (*stats.Recorder, *redis.Client) {
	t.Helper()
	r := testenv.NewRedis(t)
	rdb := r.Client(t)
	rec, err := stats.New(stats.Config{FlushInterval: time.Hour, NodeID: "test"}, rdb, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec.Close(ctx)
	})
	return rec, rdb
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
