package database

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// sqliteTimeFormat is how a time.Time parameter is stored on SQLite: UTC, microseconds, fixed
// width, so that stored values compare and sort as text in time order and carry PostgreSQL's
// precision. The literal zone suffix keeps it parseable by SQLite's date functions and the
// driver.
const sqliteTimeFormat = "2006-01-02 15:04:05.000000"

const sqliteTimeSuffix = "+00:00"

// sqliteParseFormats are the layouts a stored time is read back with: ours first, then what
// SQLite itself writes (CURRENT_TIMESTAMP, datetime()) and what other writers may have left.
var sqliteParseFormats = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ErrWriteLockTimeout is returned when a SQLite writer waited BusyTimeout for its turn inside
// this process. The usual cause is a write through DB.SQL() made from inside an InTx function,
// which waits for the very transaction it runs in.
var ErrWriteLockTimeout = errors.New("database: timed out waiting for the sqlite write lock")

func isSQLiteMemory(rest string) bool { return rest == ":memory:" }

// sqliteConnectorFor returns the connector of the SQLite database rest (the URL after
// "sqlite:"): a thin wrapper around the modernc driver; see sqliteConn for what it adds.
func sqliteConnectorFor(rest string, busy time.Duration, statements int) (c driver.Connector, memory bool, err error) {
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds()),
		"_pragma=foreign_keys(1)",
		// Temporary files (statement journals of multi-row statements, sorts) in memory: a
		// fan-out insert otherwise pays a pwrite per page it changes.
		"_pragma=temp_store(2)",
		// BEGIN IMMEDIATE for every transaction that may write: a deferred transaction that
		// reads and then writes cannot wait for the lock (SQLite answers SQLITE_BUSY at once
		// when its snapshot is stale); an immediate one takes the lock first and so can wait.
		"_txlock=immediate",
		// Reads of TIMESTAMP/DATETIME columns come back in UTC (writes are formatted by
		// CheckNamedValue below, so _time_format only matters for values it does not see).
		"_timezone=UTC",
		"_time_format=sqlite",
	}
	var dsn string
	if isSQLiteMemory(rest) {
		memory = true
		// The memdb VFS lets every pooled connection share one in-memory database (a plain
		// ":memory:" is private to one connection) with normal locking, unlike shared cache.
		// It has no WAL: readers wait while a write transaction is open. Good enough for tests.
		var b [8]byte
		_, _ = rand.Read(b[:])
		dsn = "file:/piazza-memory-" + hex.EncodeToString(b[:]) + "?vfs=memdb&" + strings.Join(params, "&")
	} else {
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return nil, false, errors.New("database: sqlite URL has no path (want sqlite:<path> or sqlite::memory:)")
		}
		if strings.ContainsAny(path, "?#") {
			return nil, false, fmt.Errorf("database: sqlite path %q must not contain '?' or '#'", path)
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, false, fmt.Errorf("database: create directory for sqlite file: %w", err)
			}
		}
		params = append(params,
			// WAL: readers do not block the writer nor the writer the readers.
			"_pragma=journal_mode(WAL)",
			// NORMAL is durable against process crashes in WAL mode; a power loss may lose the
			// last commits but never corrupts the file.
			"_pragma=synchronous(NORMAL)",
		)
		dsn = "file:" + strings.ReplaceAll(path, "%", "%25") + "?" + strings.Join(params, "&")
	}
	return &sqliteConnector{dsn: dsn, drv: &sqlite.Driver{}, gate: newWriteGate(busy), statements: statements}, memory, nil
}

// writeGate lets one SQLite writer of this process at a time proceed. SQLite allows one writer
// per database anyway; queueing writers on a channel hands the lock over as soon as it is free,
// where SQLite's busy handler would poll with sleeps of up to 100 ms.
type writeGate struct {
	turn chan struct{}
	wait time.Duration
}

func newWriteGate(wait time.Duration) *writeGate {
	return &writeGate{turn: make(chan struct{}, 1), wait: wait}
}

func (g *writeGate) acquire(ctx context.Context) error {
	select {
	case g.turn <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return ErrWriteLockTimeout
	}
}

func (g *writeGate) release() { <-g.turn }

type sqliteConnector struct {
	dsn        string
	drv        *sqlite.Driver
	gate       *writeGate
	statements int // prepared statements each connection keeps (stmtCache)
}

func (c *sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteDriverConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("database: sqlite driver connection %T lacks the context interfaces", conn)
	}
	return &sqliteConn{inner: inner, gate: c.gate, stmts: newStmtCache(inner, c.statements)}, nil
}

func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

// sqliteDriverConn is what the wrapper needs of a modernc connection.
type sqliteDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteConn wraps a modernc connection to give SQLite the package's conventions:
//   - a transaction that may write, and an Exec outside a transaction, first take the process's
//     write turn (writeGate);
//   - a statement run with Exec or Query is prepared once and kept for the next run of the same
//     text on the connection (stmtCache);
//   - time.Time parameters are stored as fixed-width UTC microsecond text;
//   - columns declared TIMESTAMPTZ (which modernc does not know) are read back as time.Time, as
//     are untyped result columns (MAX(ts), COALESCE(ts, …)) holding text in our exact format.
type sqliteConn struct {
	inner sqliteDriverConn
	gate  *writeGate
	stmts *stmtCache
	tx    *sqliteTx // the open transaction, nil outside one
}

var (
	_ driver.Conn               = (*sqliteConn)(nil)
	_ driver.ConnBeginTx        = (*sqliteConn)(nil)
	_ driver.ConnPrepareContext = (*sqliteConn)(nil)
	_ driver.ExecerContext      = (*sqliteConn)(nil)
	_ driver.QueryerContext     = (*sqliteConn)(nil)
	_ driver.NamedValueChecker  = (*sqliteConn)(nil)
	_ driver.Pinger             = (*sqliteConn)(nil)
	_ driver.SessionResetter    = (*sqliteConn)(nil)
	_ driver.Validator          = (*sqliteConn)(nil)
)

func (c *sqliteConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *sqliteConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &sqliteStmt{inner: st, conn: c, write: isWrite(query)}, nil
}

func (c *sqliteConn) Close() error {
	if c.tx != nil {
		c.tx.finish()
	}
	c.stmts.close()
	return c.inner.Close()
}

func (c *sqliteConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *sqliteConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	gated := !opts.ReadOnly
	if gated {
		if err := c.gate.acquire(ctx); err != nil {
			return nil, err
		}
	}
	tx, err := c.inner.BeginTx(ctx, opts)
	if err != nil {
		if gated {
			c.gate.release()
		}
		return nil, err
	}
	c.tx = &sqliteTx{inner: tx, conn: c, gated: gated}
	return c.tx, nil
}

func (c *sqliteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	release, err := c.writeTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	s, err := c.stmts.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	defer s.release()
	return s.stmt.ExecContext(ctx, args)
}

func (c *sqliteConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	release := func() {}
	if isWrite(query) {
		// INSERT … RETURNING and the like: a write, holding the lock until its rows close.
		var err error
		if release, err = c.writeTurn(ctx); err != nil {
			return nil, err
		}
	}
	s, err := c.stmts.acquire(ctx, query)
	if err != nil {
		release()
		return nil, err
	}
	var rows driver.Rows
	if s == nil {
		rows, err = c.inner.QueryContext(ctx, query, args)
	} else {
		rows, err = s.stmt.QueryContext(ctx, args)
	}
	if err != nil {
		if s != nil {
			s.release()
		}
		release()
		return nil, err
	}
	r := newSQLiteRows(rows)
	r.release = release
	r.stmt = s
	return r, nil
}

// isWrite reports whether query starts with a data-changing keyword, so that a write run with
// Query (INSERT … RETURNING) queues for its turn like one run with Exec.
func isWrite(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	for strings.HasPrefix(q, "--") {
		_, rest, _ := strings.Cut(q, "\n")
		q = strings.TrimLeft(rest, " \t\r\n(")
	}
	if len(q) < 6 {
		return false
	}
	switch strings.ToUpper(q[:6]) {
	case "INSERT", "UPDATE", "DELETE", "REPLAC":
		return true
	}
	return false
}

// writeTurn takes the write turn for a statement outside a transaction (inside one, the
// transaction already holds it).
func (c *sqliteConn) writeTurn(ctx context.Context) (release func(), err error) {
	if c.tx != nil {
		return func() {}, nil
	}
	if err := c.gate.acquire(ctx); err != nil {
		return nil, err
	}
	return c.gate.release, nil
}

// CheckNamedValue converts parameters as database/sql would, then formats times our way.
func (c *sqliteConn) CheckNamedValue(nv *driver.NamedValue) error {
	v, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
	if err != nil {
		return err
	}
	if t, ok := v.(time.Time); ok {
		v = formatSQLiteTime(t)
	}
	nv.Value = v
	return nil
}

func (c *sqliteConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *sqliteConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }

func (c *sqliteConn) IsValid() bool { return c.inner.IsValid() }

type sqliteTx struct {
	inner driver.Tx
	conn  *sqliteConn
	gated bool
	done  bool
}

func (t *sqliteTx) Commit() error {
	defer t.finish()
	return t.inner.Commit()
}

func (t *sqliteTx) Rollback() error {
	defer t.finish()
	return t.inner.Rollback()
}

func (t *sqliteTx) finish() {
	if t.done {
		return
	}
	t.done = true
	t.conn.tx = nil
	if t.gated {
		t.conn.gate.release()
	}
}

type sqliteStmt struct {
	inner driver.Stmt
	conn  *sqliteConn
	write bool // the statement changes data (see isWrite)
}

func (s *sqliteStmt) Close() error  { return s.inner.Close() }
func (s *sqliteStmt) NumInput() int { return s.inner.NumInput() }

func (s *sqliteStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *sqliteStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func (s *sqliteStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	release, err := s.conn.writeTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if ex, ok := s.inner.(driver.StmtExecContext); ok {
		return ex.ExecContext(ctx, args)
	}
	return nil, errors.New("database: sqlite statement lacks ExecContext")
}

func (s *sqliteStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.inner.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("database: sqlite statement lacks QueryContext")
	}
	release := func() {}
	if s.write {
		var err error
		if release, err = s.conn.writeTurn(ctx); err != nil {
			return nil, err
		}
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		release()
		return nil, err
	}
	r := newSQLiteRows(rows)
	r.release = release
	return r, nil
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

// columnKind says how a result column's text values are turned into times.
type columnKind uint8

const (
	columnOther    columnKind = iota
	columnTimeTZ              // declared TIMESTAMPTZ: any time text becomes time.Time
	columnUntyped             // no declared type: only text in our exact format does
	columnTimeDecl            // TIMESTAMP/DATETIME/DATE: the driver already converts
)

type sqliteRows struct {
	driver.Rows
	kinds   []columnKind
	release func()      // gives back the write turn a writing query took; nil otherwise
	stmt    *cachedStmt // the kept statement these rows are an execution of; nil if none
}

func (r *sqliteRows) Close() error {
	err := r.Rows.Close()
	if r.stmt != nil {
		r.stmt.release()
		r.stmt = nil
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

type declTyper interface {
	ColumnTypeDatabaseTypeName(index int) string
}

func newSQLiteRows(rows driver.Rows) *sqliteRows {
	r := &sqliteRows{Rows: rows}
	dt, ok := rows.(declTyper)
	if !ok {
		return r
	}
	r.kinds = make([]columnKind, len(rows.Columns()))
	for i := range r.kinds {
		switch dt.ColumnTypeDatabaseTypeName(i) {
		case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
			r.kinds[i] = columnTimeTZ
		case "":
			r.kinds[i] = columnUntyped
		case "TIMESTAMP", "DATETIME", "DATE":
			r.kinds[i] = columnTimeDecl
		}
	}
	return r
}

func (r *sqliteRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		// The driver reads an empty BLOB as a nil slice; NULL arrives as a nil interface. Keep
		// them apart as PostgreSQL does: empty stays empty.
		if b, ok := v.([]byte); ok && b == nil {
			dest[i] = []byte{}
		}
	}
	for i, k := range r.kinds {
		s, ok := dest[i].(string)
		if !ok {
			continue
		}
		switch k {
		case columnTimeTZ:
			if t, ok := parseSQLiteTime(s); ok {
				dest[i] = t
			}
		case columnUntyped:
			if isCanonicalSQLiteTime(s) {
				if t, ok := parseSQLiteTime(s); ok {
					dest[i] = t
				}
			}
		}
	}
	return nil
}

func (r *sqliteRows) ColumnTypeDatabaseTypeName(index int) string {
	if dt, ok := r.Rows.(declTyper); ok {
		return dt.ColumnTypeDatabaseTypeName(index)
	}
	return ""
}

func (r *sqliteRows) ColumnTypeScanType(index int) reflect.Type {
	if r.kinds != nil && (r.kinds[index] == columnTimeTZ || r.kinds[index] == columnTimeDecl) {
		return reflect.TypeFor[time.Time]()
	}
	if st, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return st.ColumnTypeScanType(index)
	}
	return reflect.TypeFor[any]()
}

func (r *sqliteRows) ColumnTypeNullable(index int) (nullable, ok bool) {
	if n, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return n.ColumnTypeNullable(index)
	}
	return false, false
}

func formatSQLiteTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(sqliteTimeFormat) + sqliteTimeSuffix
}

func parseSQLiteTime(s string) (time.Time, bool) {
	zoned := strings.HasSuffix(s, "Z")
	s = strings.TrimSuffix(s, "Z")
	for _, f := range sqliteParseFormats {
		var (
			t   time.Time
			err error
		)
		if zoned || strings.HasSuffix(f, "-07:00") {
			t, err = time.Parse(f, s)
		} else {
			// Text without a zone is UTC, as SQLite's own date functions write it.
			t, err = time.ParseInLocation(f, s, time.UTC)
		}
		if err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// isCanonicalSQLiteTime reports whether s is exactly what formatSQLiteTime writes, so that an
// untyped column is only turned into a time when it certainly holds one.
func isCanonicalSQLiteTime(s string) bool {
	const n = len(sqliteTimeFormat) + len(sqliteTimeSuffix)
	if len(s) != n || !strings.HasSuffix(s, sqliteTimeSuffix) {
		return false
	}
	for i := range len(sqliteTimeFormat) {
		c, want := s[i], sqliteTimeFormat[i]
		if want >= '0' && want <= '9' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != want {
			return false
		}
	}
	return true
}
