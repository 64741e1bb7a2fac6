// Package storetest runs a test against a fresh, migrated store: always on
// SQLite, and on PostgreSQL too when CAMPUSID_TEST_POSTGRES holds a URL
// (each test gets its own schema, dropped afterwards).
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"campusid/internal/store"
	"campusid/internal/testenv"
)

const howPostgres = "set CAMPUSID_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it on PostgreSQL too"

// Run runs fn once per engine as subtests named "sqlite" and "postgres".
func Run(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, Open(t, store.SQLite)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Open(t, store.Postgres)) })
}

// Open returns a migrated store on a fresh database of the dialect, closed
// at cleanup. On PostgreSQL without CAMPUSID_TEST_POSTGRES the test skips
// (or fails under CAMPUSID_TEST_REQUIRE_ALL=1).
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	u := URL(t, d)
	db, err := store.Open(context.Background(), u, 8)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), time.Now()); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	return db
}

var schemaSeq atomic.Int64

// URL returns the URL of a fresh, empty database of the dialect (a new
// SQLite file, or a new PostgreSQL schema), removed at cleanup. Use it when
// several servers must share one database.
func URL(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "campusid.db")
	}
	base := os.Getenv("CAMPUSID_TEST_POSTGRES")
	if base == "" {
		testenv.Missing(t, "PostgreSQL", howPostgres)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres at %s unreachable or refused CREATE SCHEMA: %v (%s)", base, err, howPostgres)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		a.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	pu, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CAMPUSID_TEST_POSTGRES: %v", err)
	}
	q := pu.Query()
	q.Set("search_path", schema)
	pu.RawQuery = q.Encode()
	return strings.Replace(pu.String(), "postgresql://", "postgres://", 1)
}
