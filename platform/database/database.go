// Package database is the relational-store plumbing the services share: it opens PostgreSQL
// (distributed mode) or SQLite (embedded mode) behind one *sql.DB, runs transactions, applies
// embedded versioned migrations and classifies driver errors, so that a service's SQL and code
// path are the same on both engines.
//
// Conventions the package makes hold on both engines:
//   - Parameters are written $1, $2, … (PostgreSQL style). The SQLite driver binds $N by its
//     number, so "$2 … $1" and a repeated "$1" work unchanged; no rebinding happens.
//   - Timestamps are declared TIMESTAMPTZ and come back as time.Time in UTC, truncated to the
//     microsecond (PostgreSQL's precision). On SQLite they are stored as fixed-width UTC text
//     ("2006-01-02 15:04:05.000000+00:00"), which sorts in time order.
//   - Writes on SQLite are serialized inside the process (one writer at a time, queued in Go
//     instead of spinning on SQLITE_BUSY), and every transaction that may write starts with
//     BEGIN IMMEDIATE, so a read-then-write transaction never fails with SQLITE_BUSY_SNAPSHOT.
//     Another process writing the same file is waited for up to Config.BusyTimeout.
//   - Inside a sampled trace, every statement, transaction (BEGIN, COMMIT, ROLLBACK) and new
//     connection is a client span (a statement's named by its operation, "INSERT", with its
//     SQL text but never its parameters), a child of the caller's span; outside one, none is
//     made.
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The supported engines.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// ErrNoRows is returned by QueryRow(...).Scan when no row matched; it is sql.ErrNoRows itself, so
// errors.Is works with either name.
var ErrNoRows = sql.ErrNoRows

// Config describes a database to open.
type Config struct {
	// URL selects the engine and the database:
	//   postgres://user:pass@host:5432/db?sslmode=disable (or postgresql://…) — PostgreSQL via pgx;
	//   sqlite:<path>, e.g. sqlite:./data/user.db or sqlite:///var/lib/piazza/user.db — a SQLite
	//   file (its directory is created if missing);
	//   sqlite::memory: — a private in-memory SQLite database, gone when the DB is closed (tests).
	URL string
	// MaxOpenConns caps open connections. Default 10 (PostgreSQL) or 8 (SQLite, where they serve
	// concurrent readers; writers take turns whatever this is).
	MaxOpenConns int
	// MaxIdleConns caps idle connections kept in the pool. Default MaxOpenConns.
	MaxIdleConns int
	// ConnMaxLifetime recycles connections after this age. Default 30 minutes; negative: never.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle this long. Default 5 minutes; negative: never.
	ConnMaxIdleTime time.Duration
	// BusyTimeout is how long a SQLite writer waits for the write lock (held by this process or
	// another one) before failing. Default 5 seconds. Ignored for PostgreSQL.
	BusyTimeout time.Duration
	// SQLiteStatements is how many prepared statements each SQLite connection keeps, by their
	// text, the least recently used evicted first (see stmtCache). Default 256; negative: none,
	// every statement is parsed on every run. Ignored for PostgreSQL, where pgx keeps 512 per
	// connection itself.
	SQLiteStatements int
	// TracerProvider makes the spans of InTx and Migrate, and a client span for every
	// statement, transaction and new connection inside a sampled trace (see
	// tracedConnector).
	// Nil: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (c *Config) fillDefaults(d Dialect) {
	if c.MaxOpenConns == 0 {
		if d == SQLite {
			c.MaxOpenConns = 8
		} else {
			c.MaxOpenConns = 10
		}
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = c.MaxOpenConns
	}
	if c.ConnMaxLifetime == 0 {
		c.ConnMaxLifetime = 30 * time.Minute
	}
	if c.ConnMaxIdleTime == 0 {
		c.ConnMaxIdleTime = 5 * time.Minute
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
	if c.SQLiteStatements == 0 {
		c.SQLiteStatements = 256
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxOpenConns < 0:
		return errors.New("database: MaxOpenConns must not be negative")
	case c.MaxIdleConns < 0:
		return errors.New("database: MaxIdleConns must not be negative")
	case c.BusyTimeout < 0:
		return errors.New("database: BusyTimeout must not be negative")
	}
	return nil
}

// DB is an open database: a *sql.DB plus the engine it talks to. It is safe for concurrent use.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	tracer  trace.Tracer
	log     *slog.Logger
	// keep holds one connection of an in-memory SQLite database open, since the database
	// disappears when its last connection closes and the pool closes idle connections.
	keep *sql.Conn
}

// Open opens the database cfg.URL names and checks that it answers. log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	scheme, rest, ok := strings.Cut(cfg.URL, ":")
	if !ok {
		return nil, fmt.Errorf("database: URL %q has no scheme (want postgres://… or sqlite:…)", redact(cfg.URL))
	}
	var d Dialect
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		d = Postgres
	case "sqlite":
		d = SQLite
	default:
		return nil, fmt.Errorf("database: unsupported URL scheme %q (want postgres, postgresql or sqlite)", scheme)
	}
	cfg.fillDefaults(d)
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	db := &DB{dialect: d, log: log, tracer: cfg.TracerProvider.Tracer("github.com/piazza-social/piazza/platform/database")}
	var (
		connector driver.Connector
		err       error
	)
	switch d {
	case Postgres:
		connector, err = postgresConnector(cfg.URL)
	case SQLite:
		var memory bool
		connector, memory, err = sqliteConnectorFor(rest, cfg.BusyTimeout, cfg.SQLiteStatements)
		if err == nil && memory && cfg.MaxOpenConns < 2 {
			// One connection is pinned to keep the database alive; leave one for work.
			cfg.MaxOpenConns = 2
		}
	}
	if err != nil {
		return nil, err
	}
	db.sql = sql.OpenDB(newTracedConnector(connector, d, cfg.TracerProvider))
	db.sql.SetMaxOpenConns(cfg.MaxOpenConns)
	db.sql.SetMaxIdleConns(cfg.MaxIdleConns)
	db.sql.SetConnMaxLifetime(max(cfg.ConnMaxLifetime, 0))
	db.sql.SetConnMaxIdleTime(max(cfg.ConnMaxIdleTime, 0))

	if d == SQLite && isSQLiteMemory(rest) {
		db.keep, err = db.sql.Conn(ctx)
		if err != nil {
			_ = db.sql.Close()
			return nil, fmt.Errorf("database: open in-memory sqlite: %w", err)
		}
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("database: connect to %s: %w", redact(cfg.URL), err)
	}
	log.InfoContext(ctx, "database opened", slog.String("dialect", string(d)), slog.String("url", redact(cfg.URL)))
	return db, nil
}

// SQL returns the connection pool. Use it for queries outside a transaction; it is the same
// *sql.DB for the life of the DB.
func (db *DB) SQL() *sql.DB { return db.sql }

// Dialect reports the engine behind the DB.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping reports whether the database answers; readiness checks call it.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("database: ping: %w", err)
	}
	return nil
}

// Close closes the pool; an in-memory SQLite database is gone afterwards.
func (db *DB) Close() error {
	var errKeep error
	if db.keep != nil {
		errKeep = db.keep.Close()
	}
	return errors.Join(errKeep, db.sql.Close())
}

// InTx runs fn in a transaction and commits it if fn returns nil; if fn returns an error or
// panics, the transaction is rolled back and the error (or panic) passed on. fn must do all its
// work through tx: on SQLite a write transaction holds the process's write turn, so a write
// through db.SQL() inside fn waits for fn itself and fails after BusyTimeout.
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	return db.InTxOptions(ctx, nil, fn)
}

// InTxOptions is InTx with transaction options (isolation level, read-only). A read-only
// transaction on SQLite does not take the write turn.
func (db *DB) InTxOptions(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) (err error) {
	ctx, span := db.tracer.Start(ctx, "database.InTx", trace.WithAttributes(attribute.String("db.system", string(db.dialect))))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	tx, err := db.sql.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Rollback after a failed fn or a panic; its own error adds nothing useful.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		committed = true // Commit has ended the transaction either way.
		return fmt.Errorf("database: commit: %w", err)
	}
	committed = true
	return nil
}

// redact hides the password of a URL so it can be logged.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
