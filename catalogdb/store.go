package catalogdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/edgeproxy/edgeproxy/auth"
)

// Store reads and writes the catalog table files.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

var _ auth.CatalogSource = (*Store)(nil)

// ErrInvalid wraps a record the catalog refuses (bad id, bucket, key or
// hash); the admin API answers 400.
var ErrInvalid = errors.New("catalogdb: invalid file record")

const fileColumns = `id, filename, coalesce(file_hash, ''), size, storage_path, content_type, created_at, updated_at`

// Lookup returns the file with id, auth.ErrFileNotFound when there is none
// (or id is not a catalog id), or an error wrapping PostgreSQL's failure.
func (s *Store) Lookup(ctx context.Context, id string) (auth.FileMeta, error) {
	n, ok := parseID(id)
	if !ok {
		return auth.FileMeta{}, auth.ErrFileNotFound
	}
	m, err := scanFile(s.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE id = $1`, n))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.FileMeta{}, auth.ErrFileNotFound
	}
	if err != nil {
		return auth.FileMeta{}, fmt.Errorf("catalogdb: lookup %q: %w", id, err)
	}
	return m, nil
}

// Put stores m and returns the stored record. With m.ID empty it adds a
// file: when m.SHA256 is already in the table it changes nothing and
// returns the existing row with created false (content addressing). With
// m.ID set it creates or replaces that row. Callers invalidate the caches
// (auth.Catalog.Invalidate) after Put returns.
func (s *Store) Put(ctx context.Context, m auth.FileMeta) (_ auth.FileMeta, created bool, err error) {
	if err := validate(m); err != nil {
		return auth.FileMeta{}, false, err
	}
	hash := any(nil)
	if m.SHA256 != "" {
		hash = strings.ToLower(m.SHA256)
	}
	path := m.Bucket + "/" + m.Key
	if m.ID == "" {
		if hash != nil {
			old, err := s.ByHash(ctx, m.SHA256)
			if err == nil {
				return old, false, nil
			}
			if !errors.Is(err, auth.ErrFileNotFound) {
				return auth.FileMeta{}, false, err
			}
		}
		// ON CONFLICT DO NOTHING then a read covers two concurrent puts of
		// the same content: one inserts, the other reads its row.
		row := s.pool.QueryRow(ctx, `INSERT INTO files (filename, file_hash, size, storage_path, content_type)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (file_hash) DO NOTHING RETURNING `+fileColumns,
			m.Filename, hash, m.Size, path, m.ContentType)
		got, err := scanFile(row)
		if errors.Is(err, pgx.ErrNoRows) && hash != nil {
			got, err = s.ByHash(ctx, m.SHA256)
			return got, false, err
		}
		if err != nil {
			return auth.FileMeta{}, false, fmt.Errorf("catalogdb: put: %w", err)
		}
		return got, true, nil
	}
	id, _ := parseID(m.ID) // validate checked it
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return auth.FileMeta{}, false, fmt.Errorf("catalogdb: put %q: %w", m.ID, err)
	}
	defer tx.Rollback(ctx)
	row := tx.QueryRow(ctx, `INSERT INTO files (id, filename, file_hash, size, storage_path, content_type)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET filename = EXCLUDED.filename, file_hash = EXCLUDED.file_hash,
			size = EXCLUDED.size, storage_path = EXCLUDED.storage_path,
			content_type = EXCLUDED.content_type, updated_at = now()
		RETURNING `+fileColumns+`, (xmax = 0)`, id, m.Filename, hash, m.Size, path, m.ContentType)
	got, err := scanFile(row, &created)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: file_hash
		return auth.FileMeta{}, false, fmt.Errorf("%w: sha256 %s is already file %s", ErrInvalid, hash, s.idOfHash(ctx, m.SHA256))
	}
	if err != nil {
		return auth.FileMeta{}, false, fmt.Errorf("catalogdb: put %q: %w", m.ID, err)
	}
	// An explicit id must not collide with a later generated one.
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('files', 'id'),
		greatest($1, (SELECT last_value FROM files_id_seq)))`, id); err != nil {
		return auth.FileMeta{}, false, fmt.Errorf("catalogdb: put %q: %w", m.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return auth.FileMeta{}, false, fmt.Errorf("catalogdb: put %q: %w", m.ID, err)
	}
	return got, created, nil
}

func (s *Store) idOfHash(ctx context.Context, hash string) string {
	m, err := s.ByHash(ctx, hash)
	if err != nil {
		return "?"
	}
	return m.ID
}

// ByHash returns the file whose content has SHA-256 hash (hex), or
// auth.ErrFileNotFound.
func (s *Store) ByHash(ctx context.Context, hash string) (auth.FileMeta, error) {
	m, err := scanFile(s.pool.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE file_hash = $1`, strings.ToLower(hash)))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.FileMeta{}, auth.ErrFileNotFound
	}
	if err != nil {
		return auth.FileMeta{}, fmt.Errorf("catalogdb: by hash: %w", err)
	}
	return m, nil
}

// List returns up to limit files with ids greater than after, in id order
// (keyset pagination: pass the last id seen).
func (s *Store) List(ctx context.Context, after int64, limit int) ([]auth.FileMeta, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+fileColumns+` FROM files WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalogdb: list: %w", err)
	}
	defer rows.Close()
	var out []auth.FileMeta
	for rows.Next() {
		m, err := scanFile(rows)
		if err != nil {
			return nil, fmt.Errorf("catalogdb: list: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalogdb: list: %w", err)
	}
	return out, nil
}

// Delete removes the file with id, or returns auth.ErrFileNotFound. The
// object in the store and the file's access counts are kept.
func (s *Store) Delete(ctx context.Context, id string) error {
	n, ok := parseID(id)
	if !ok {
		return auth.ErrFileNotFound
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM files WHERE id = $1`, n)
	if err != nil {
		return fmt.Errorf("catalogdb: delete %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return auth.ErrFileNotFound
	}
	return nil
}

// Ping reports whether PostgreSQL answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("catalogdb: ping: %w", err)
	}
	return nil
}

// parseID reads a catalog id: a positive decimal BIGINT without sign or
// leading zeros, so that one file has one id string (and one Redis key).
func parseID(id string) (int64, bool) {
	if id == "" || id[0] == '0' || id[0] == '+' || id[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return n, err == nil && n > 0
}

func validate(m auth.FileMeta) error {
	switch {
	case m.ID != "":
		if _, ok := parseID(m.ID); !ok {
			return fmt.Errorf("%w: id %q is not a positive integer", ErrInvalid, m.ID)
		}
	}
	switch {
	case m.Bucket == "" || strings.Contains(m.Bucket, "/"):
		return fmt.Errorf("%w: bucket %q", ErrInvalid, m.Bucket)
	case m.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case m.Size < 0:
		return fmt.Errorf("%w: negative size", ErrInvalid)
	case utf8.RuneCountInString(m.Filename) > 255: // VARCHAR(255) counts characters
		return fmt.Errorf("%w: filename longer than 255 characters", ErrInvalid)
	case m.SHA256 != "" && !isHex64(m.SHA256):
		return fmt.Errorf("%w: sha256 must be 64 hex digits", ErrInvalid)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// scanFile reads one row of fileColumns (plus extra destinations).
func scanFile(row pgx.Row, extra ...any) (auth.FileMeta, error) {
	var (
		m        auth.FileMeta
		id       int64
		path     string
		cre, upd time.Time
	)
	dst := append([]any{&id, &m.Filename, &m.SHA256, &m.Size, &path, &m.ContentType, &cre, &upd}, extra...)
	if err := row.Scan(dst...); err != nil {
		return auth.FileMeta{}, err
	}
	m.ID = strconv.FormatInt(id, 10)
	m.Bucket, m.Key, _ = strings.Cut(path, "/")
	m.CreatedAt, m.UpdatedAt = cre.UTC(), upd.UTC()
	return m, nil
}
