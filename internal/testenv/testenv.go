// Package testenv gives tests real services: a fresh Postgres database per
// test, a Redis client with a private key prefix, a fresh SQLite file.
//
// Outside CI a missing Postgres or Redis skips the test with a visible
// message; with CI=true or SWITCHBOARD_REQUIRE_SERVICES=1 it fails instead,
// so a CI run can never pass without exercising the production path.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/redis/go-redis/v9"
)

// Required reports whether missing services must fail tests.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SWITCHBOARD_REQUIRE_SERVICES") == "1"
}

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (CI=true or SWITCHBOARD_REQUIRE_SERVICES=1) but not reachable: %v", what, err)
	}
	t.Skipf("SKIP: %s not reachable (%v); set it up to run this test", what, err)
}

// PostgresURL is the server tests use; SWITCHBOARD_TEST_POSTGRES overrides.
func PostgresURL() string {
	if u := os.Getenv("SWITCHBOARD_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisURL is the server tests use; SWITCHBOARD_TEST_REDIS overrides.
func RedisURL() string {
	if u := os.Getenv("SWITCHBOARD_TEST_REDIS"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Name returns a random lower-case name with the given prefix, usable as a
// database name or key prefix.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Postgres creates an empty database for the test, drops it at cleanup and
// returns its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", PostgresURL())
	if err != nil {
		unavailable(t, "Postgres", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		unavailable(t, "Postgres at "+PostgresURL(), err)
	}
	name := Name("sbtest_")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	})
	u, _ := url.Parse(PostgresURL())
	u.Path = "/" + name
	return u.String()
}

// SQLite returns the DSN of a fresh SQLite file in the test's temp dir.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "switchboard.db")
}

// Redis returns a client on the test Redis and a key prefix private to the
// test; keys under the prefix are deleted at cleanup.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		unavailable(t, "Redis at "+RedisURL(), err)
	}
	prefix := Name("sbt") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	})
	return c, prefix
}

// Databases lists the database DSNs the store suites run against: SQLite
// always, Postgres when reachable (or required).
func Databases(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}
