package catalogdb

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/auth"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", false}, {"0", false}, {"01", false}, {"-1", false}, {"+1", false}, {"1a", false},
		{"9223372036854775808", false}, {"a/b", false},
		{"1", true}, {"10086", true}, {"9223372036854775807", true},
	} {
		if _, ok := parseID(tc.in); ok != tc.ok {
			t.Errorf("parseID(%q) ok = %v, want %v", tc.in, ok, tc.ok)
		}
	}
}

func TestStore(t *testing.T) {
	_, pool := newDB(t)
	st := NewStore(pool)
	ctx := ctxT(t, 30*time.Second)
	hash := strings.Repeat("ab", 32)
	m := auth.FileMeta{Bucket: "dl", Key: "iso/a b.iso", Filename: "a b.iso", SHA256: strings.ToUpper(hash), Size: 1 << 40, ContentType: "application/x-iso9660-image"}
	got, created, err := st.Put(ctx, m)
	if err != nil || !created || got.ID == "" || got.SHA256 != hash || got.Key != m.Key || got.Bucket != "dl" || got.CreatedAt.IsZero() {
		t.Fatalf("Put = %+v, %v, %v", got, created, err)
	}
	// Content addressing: the same bytes under another name keep the id.
	again, created, err := st.Put(ctx, auth.FileMeta{Bucket: "dl", Key: "other", SHA256: hash, Size: 1 << 40})
	if err != nil || created || again.ID != got.ID || again.Key != m.Key {
		t.Fatalf("Put of known content = %+v, %v, %v; want id %s unchanged", again, created, err, got.ID)
	}
	if l, err := st.Lookup(ctx, got.ID); err != nil || l != got {
		t.Fatalf("Lookup = %+v, %v; want %+v", l, err, got)
	}
	for _, id := range []string{"999", "x", "0"} {
		if _, err := st.Lookup(ctx, id); !errors.Is(err, auth.ErrFileNotFound) {
			t.Errorf("Lookup(%q) = %v", id, err)
		}
	}
	// An explicit id: created, replaced, and later generated ids pass it.
	if _, created, err := st.Put(ctx, auth.FileMeta{ID: "500", Bucket: "b", Key: "k", Size: 1}); err != nil || !created {
		t.Fatalf("Put id 500: %v %v", created, err)
	}
	if r, created, err := st.Put(ctx, auth.FileMeta{ID: "500", Bucket: "b", Key: "k2", Size: 2}); err != nil || created || r.Key != "k2" {
		t.Fatalf("replace id 500: %+v %v %v", r, created, err)
	}
	n, _, err := st.Put(ctx, auth.FileMeta{Bucket: "b", Key: "next", Size: 3})
	if err != nil || n.ID != "501" {
		t.Fatalf("next generated id = %q, %v; want 501", n.ID, err)
	}
	// A hash already owned by another id is refused.
	if _, _, err := st.Put(ctx, auth.FileMeta{ID: "500", Bucket: "b", Key: "k", SHA256: hash}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate hash on explicit id: %v", err)
	}
	for _, bad := range []auth.FileMeta{
		{ID: "abc", Bucket: "b", Key: "k"}, {Bucket: "", Key: "k"}, {Bucket: "a/b", Key: "k"},
		{Bucket: "b", Key: ""}, {Bucket: "b", Key: "k", Size: -1}, {Bucket: "b", Key: "k", SHA256: "xyz"},
		{Bucket: "b", Key: "k", Filename: strings.Repeat("é", 256)},
	} {
		if _, _, err := st.Put(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	list, err := st.List(ctx, 0, 2)
	if err != nil || len(list) != 2 || list[0].ID != got.ID || list[1].ID != "500" {
		t.Fatalf("List page 1 = %+v, %v", list, err)
	}
	list, err = st.List(ctx, 500, 10)
	if err != nil || len(list) != 1 || list[0].ID != "501" {
		t.Fatalf("List page 2 = %+v, %v", list, err)
	}
	if err := st.Delete(ctx, "500"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "500"); !errors.Is(err, auth.ErrFileNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	cur, latest, err := SchemaVersion(ctx, pool)
	if err != nil || cur != latest || latest < 1 {
		t.Fatalf("SchemaVersion = %d, %d, %v", cur, latest, err)
	}
	if applied, err := Migrate(ctx, pool); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate applied %v, %v", applied, err)
	}
}

// TestCatalogOverPostgres is the read path of a node: memory, Redis, then
// PostgreSQL. With PostgreSQL down, ids in memory or Redis keep serving
// and an uncached id fails (503 at the proxy) within the budget.
func TestCatalogOverPostgres(t *testing.T) {
	pg, pool := newDB(t)
	st := NewStore(pool)
	r := testenv.NewRedis(t)
	rdb := r.Client(t)
	ctx := ctxT(t, time.Minute)
	var ids []string
	for i := range 3 {
		m, _, err := st.Put(ctx, auth.FileMeta{Bucket: "dl", Key: "f" + string(rune('a'+i)), Size: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	newCat := func() *auth.Catalog {
		c, err := auth.NewCatalog(auth.CatalogConfig{}, rdb, quietLog(), auth.WithSource(st))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	node1 := newCat()
	for _, id := range ids[:2] {
		if m, err := node1.Lookup(ctx, id); err != nil || m.ID != id {
			t.Fatalf("Lookup(%s) = %+v, %v", id, m, err)
		}
	}
	pg.Kill(t)
	// node1 serves from memory; a fresh node2 from Redis (written back).
	node2 := newCat()
	for _, c := range []*auth.Catalog{node1, node2} {
		for _, id := range ids[:2] {
			if _, err := c.Lookup(ctx, id); err != nil {
				t.Fatalf("cached id %s with PostgreSQL down: %v", id, err)
			}
		}
	}
	start := time.Now()
	_, err := node2.Lookup(ctx, ids[2])
	if err == nil || errors.Is(err, auth.ErrFileNotFound) {
		t.Fatalf("uncached id with PostgreSQL down: %v, want a store error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("uncached lookup took %v", d)
	}
	pg.Start(t)
	testenv.WaitFor(t, 30*time.Second, "the uncached id to resolve after the restart", func() bool {
		_, err := node2.Lookup(ctx, ids[2])
		return err == nil
	})
}
