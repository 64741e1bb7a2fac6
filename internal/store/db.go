// Package store is campusid's one SQL store over database/sql, for SQLite
// (modernc.org/sqlite, the zero-setup default) and PostgreSQL (pgx).
//
// Queries are written once in portable SQL with ? placeholders; only DDL,
// the migration lock and error-code mapping differ per dialect. Times are
// stored as Unix milliseconds (BIGINT) so both engines compare them alike.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound: no row matched.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique constraint refused the write.
	ErrConflict = errors.New("store: conflict")
)

// Dialect names the SQL engine.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// DB is the store. Inside InTx it is bound to the transaction.
type DB struct {
	sql     *sql.DB
	q       querier
	tx      *sql.Tx // inside InTx
	dialect Dialect
	inTx    bool
	stmts   *stmtCache // SQLite only, shared by the transaction-bound copies
}

// stmtCache keeps SQLite's prepared statements: modernc.org/sqlite would
// otherwise parse and plan every statement at every call, a fifth to a third
// of the CPU of a request (docs/benchmarks.md). pgx caches its own.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxCachedStmts bounds the cache; the queries are fixed strings, a few
// hundred at most.
const maxCachedStmts = 512

// Open connects to url ("sqlite:PATH" or "postgres://..."). It does not migrate.
func Open(ctx context.Context, url string, maxConns int) (*DB, error) {
	var (
		sdb     *sql.DB
		dialect Dialect
		err     error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		// WAL lets readers run beside the writer; immediate transactions take
		// the write lock at BEGIN so two writers never deadlock on upgrade.
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		sdb, err = sql.Open("sqlite", dsn)
		dialect = SQLite
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		sdb, err = sql.Open("pgx", url)
		dialect = Postgres
	default:
		return nil, fmt.Errorf("store: unsupported database url (want sqlite:PATH or postgres://...)")
	}
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	sdb.SetMaxOpenConns(maxConns)
	sdb.SetMaxIdleConns(maxConns)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := ping(ctx, sdb, dialect); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	db := &DB{sql: sdb, q: sdb, dialect: dialect}
	if dialect == SQLite {
		db.stmts = &stmtCache{m: map[string]*sql.Stmt{}}
	}
	return db, nil
}

// ping checks the connection. On SQLite, switching a new file to WAL takes
// an exclusive lock without waiting on the busy timeout, so nodes opening
// the same new file at once may be told SQLITE_BUSY: they try again.
func ping(ctx context.Context, sdb *sql.DB, d Dialect) error {
	for i := 0; ; i++ {
		err := sdb.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || d != SQLite || i >= 100 || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close closes the pool.
func (db *DB) Close() error {
	if db.stmts != nil {
		db.stmts.mu.Lock()
		for _, st := range db.stmts.m {
			st.Close()
		}
		db.stmts.m = map[string]*sql.Stmt{}
		db.stmts.mu.Unlock()
	}
	return db.sql.Close()
}

// Dialect reports the engine.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping checks that the database answers (for /healthz).
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Stats exposes the pool statistics.
func (db *DB) Stats() sql.DBStats { return db.sql.Stats() }

// InTx runs fn in one transaction, committed when fn returns nil. Nested
// calls join the outer transaction.
func (db *DB) InTx(ctx context.Context, fn func(tx *DB) error) (err error) {
	if db.inTx {
		return fn(db)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", db.mapErr(err))
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
		if err != nil {
			tx.Rollback()
			return
		}
		if cerr := tx.Commit(); cerr != nil {
			err = fmt.Errorf("store: commit: %w", db.mapErr(cerr))
		}
	}()
	return fn(&DB{sql: db.sql, q: tx, tx: tx, dialect: db.dialect, inTx: true, stmts: db.stmts})
}

// on returns what runs query: its cached prepared statement when there is
// one (bound to the transaction inside InTx), else the pool or transaction.
func (db *DB) on(ctx context.Context, query string) querier {
	if db.stmts == nil {
		return db.q
	}
	c := db.stmts
	c.mu.Lock()
	st, ok := c.m[query]
	full := len(c.m) >= maxCachedStmts
	c.mu.Unlock()
	if !ok {
		// Inside a transaction the pool may have no other connection to
		// prepare on (max_open_conns 1): those statements run unprepared
		// until they are met outside one.
		if full || db.tx != nil {
			return db.q
		}
		var err error
		if st, err = db.sql.PrepareContext(ctx, query); err != nil {
			return db.q // the error shows when the query runs
		}
		c.mu.Lock()
		if prev, dup := c.m[query]; dup {
			st.Close()
			st = prev
		} else {
			c.m[query] = st
		}
		c.mu.Unlock()
	}
	if db.tx != nil {
		return stmtQuerier{db.tx.StmtContext(ctx, st)}
	}
	return stmtQuerier{st}
}

// stmtQuerier runs a prepared statement; the query argument is its own.
type stmtQuerier struct{ st *sql.Stmt }

func (s stmtQuerier) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return s.st.ExecContext(ctx, args...)
}

func (s stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return s.st.QueryContext(ctx, args...)
}

func (s stmtQuerier) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return s.st.QueryRowContext(ctx, args...)
}

func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = db.rebind(query)
	res, err := db.on(ctx, query).ExecContext(ctx, query, args...)
	return res, db.mapErr(err)
}

func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = db.rebind(query)
	rows, err := db.on(ctx, query).QueryContext(ctx, query, args...)
	return rows, db.mapErr(err)
}

func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = db.rebind(query)
	return db.on(ctx, query).QueryRowContext(ctx, query, args...)
}

// execOne runs an UPDATE or DELETE that must touch exactly one row.
func (db *DB) execOne(ctx context.Context, query string, args ...any) error {
	res, err := db.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// rebind turns ? placeholders into $1, $2... for PostgreSQL. Queries hold no
// ? inside string literals.
func (db *DB) rebind(q string) string {
	if db.dialect != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// mapErr turns unique violations into ErrConflict and no rows into ErrNotFound.
func (db *DB) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) {
		switch sqlErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrConflict, sqlErr.Error())
		}
	}
	return err
}

// NewID returns a random identifier (128 bits, lower-case base32).
func NewID() string {
	return strings.ToLower(b32.EncodeToString(randomBytes(16)))
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// ms and fromMS convert times to and from stored Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func msPtr(t *time.Time) sql.NullInt64 {
	if t == nil || t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNull(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
