package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// Store is the hub's database. Its clock has microseconds, as Postgres
// keeps them: a time handed out before the commit is the time read back.
type Store struct {
	DB  *bun.DB
	pg  bool
	now func() time.Time
}

// Errors callers match with errors.Is.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrDuplicate = errors.New("store: duplicate")
	ErrConflict  = errors.New("store: conflict")
	ErrInvalid   = errors.New("store: invalid value")
)

// Open connects to the database named by dsn:
//
//	sqlite:///abs/path/file.db, sqlite://relative/file.db, or a plain path
//	postgres://user@host:5432/db?sslmode=disable
//
// It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var (
		db *bun.DB
		pg bool
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sqldb, err := sql.Open("pgx", withSimpleProtocol(dsn))
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(32)
		db = bun.NewDB(sqldb, pgdialect.New())
		pg = true
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// WAL keeps readers off the writer's back; one connection
		// serializes writers, which SQLite needs anyway and which avoids
		// SQLITE_BUSY under concurrent ingest.
		// The path goes into a URI: escape what URIs give meaning to.
		uriPath := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
		sqldb, err := sql.Open("sqlite", "file:"+uriPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		sqldb.SetMaxOpenConns(1)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{DB: db, pg: pg, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}, nil
}

// withSimpleProtocol makes pgx send queries as simple-protocol text unless
// the DSN says otherwise. bun formats every value into the SQL itself, so
// each statement text is new: pgx's default (prepare, describe, then
// execute) would parse and plan every one twice and cost extra round
// trips, for no reuse.
func withSimpleProtocol(dsn string) string {
	if strings.Contains(dsn, "default_query_exec_mode=") {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "default_query_exec_mode=simple_protocol"
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// Dialect names the database kind: "postgres" or "sqlite".
func (s *Store) Dialect() string {
	if s.pg {
		return "postgres"
	}
	return "sqlite"
}

// Ping checks the database connection (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// SetClock replaces the clock (tests).
func (s *Store) SetClock(now func() time.Time) {
	s.now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
}

// Now is the store's clock, in UTC.
func (s *Store) Now() time.Time { return s.now() }

// Tx runs fn in a transaction.
func (s *Store) Tx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return s.DB.RunInTx(ctx, nil, fn)
}

// IsUnique reports whether err is a unique-constraint violation, on either
// dialect.
func IsUnique(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "UNIQUE constraint failed") ||
		strings.Contains(msg, "duplicate key value")
}

var _ schema.Dialect = pgdialect.New()
