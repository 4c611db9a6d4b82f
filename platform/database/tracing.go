package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracedConnector wraps the engine's connector so that, inside a sampled trace, every
// statement, transaction (begin, commit, rollback) and new connection is a client span, a
// child of the caller's span: a request's trace shows the queries it ran, with their SQL text
// (never their parameters) and their errors.
//
// Outside a sampled trace nothing is made: a query without one (a poller, a sweeper) starts
// no trace of its own, and a query of an unsampled request costs one context lookup and no
// allocation. That is why this is a thin wrapper of our own rather than
// github.com/XSAM/otelsql: otelsql records a duration measurement on every call, traced or
// not, which measured +4 µs and +1.5 KB (9 allocations) per query on SQLite — more than the
// query itself on the embedded default's hot paths.
//
// The wrapper needs the context-aware interfaces that pgx's and our SQLite connections both
// implement (and forwards driver.Validator to the connections that have it); everything it does not trace (ping, session reset, validation, value checks,
// prepared statements, which nothing prepares explicitly) passes straight through, and the
// rows are the driver's own (a query's span ends when its first results are in).
type tracedConnector struct {
	inner  driver.Connector
	tracer trace.Tracer
	system attribute.KeyValue
}

func newTracedConnector(inner driver.Connector, d Dialect, tp trace.TracerProvider) *tracedConnector {
	system := semconv.DBSystemNamePostgreSQL
	if d == SQLite {
		system = semconv.DBSystemNameSQLite
	}
	return &tracedConnector{inner: inner, tracer: tp.Tracer("github.com/piazza-social/piazza/platform/database"), system: system}
}

// tracedDriverConn is what the wrapper needs of a driver's connection.
type tracedDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.NamedValueChecker
	driver.Pinger
	driver.SessionResetter
}

var (
	_ driver.Connector = (*tracedConnector)(nil)
	_ io.Closer        = (*tracedConnector)(nil)
	_ tracedDriverConn = (*tracedConn)(nil)
	_ driver.Validator = (*tracedConn)(nil)
)

// start starts a client span when ctx holds a sampled span, named name or, when name is
// empty, after query's operation; otherwise it returns ctx and nil without looking at query.
func (c *tracedConnector) start(ctx context.Context, name, query string) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, nil
	}
	if name == "" {
		name = operation(query)
	}
	attrs := []attribute.KeyValue{c.system, semconv.DBOperationName(name)}
	if query != "" {
		attrs = append(attrs, semconv.DBQueryText(query))
	}
	return c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// end ends span (nil: none was started), recording err. driver.ErrSkip is database/sql's
// "take the other code path", not a failure.
func end(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil && !errors.Is(err, driver.ErrSkip) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (c *tracedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, span := c.start(ctx, "CONNECT", "")
	conn, err := c.inner.Connect(ctx)
	end(span, err)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(tracedDriverConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("database: driver connection %T lacks the context interfaces", conn)
	}
	return &tracedConn{inner: inner, c: c}, nil
}

func (c *tracedConnector) Driver() driver.Driver { return c.inner.Driver() }

// Close closes the inner connector if it has anything to close; database/sql calls it when
// the pool closes.
func (c *tracedConnector) Close() error {
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

type tracedConn struct {
	inner tracedDriverConn
	c     *tracedConnector
}

func (t *tracedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx, span := t.c.start(ctx, "", query)
	res, err := t.inner.ExecContext(ctx, query, args)
	end(span, err)
	return res, err
}

func (t *tracedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx, span := t.c.start(ctx, "", query)
	rows, err := t.inner.QueryContext(ctx, query, args)
	end(span, err)
	return rows, err
}

func (t *tracedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	bctx, span := t.c.start(ctx, "BEGIN", "")
	tx, err := t.inner.BeginTx(bctx, opts)
	end(span, err)
	if err != nil || span == nil {
		return tx, err
	}
	// Commit and rollback are spans of the same parent as the begin.
	return &tracedTx{inner: tx, ctx: ctx, c: t.c}, nil
}

func (t *tracedConn) Begin() (driver.Tx, error) {
	return t.BeginTx(context.Background(), driver.TxOptions{})
}

func (t *tracedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return t.inner.PrepareContext(ctx, query)
}

func (t *tracedConn) Prepare(query string) (driver.Stmt, error) { return t.inner.Prepare(query) }
func (t *tracedConn) Close() error                              { return t.inner.Close() }
func (t *tracedConn) Ping(ctx context.Context) error            { return t.inner.Ping(ctx) }
func (t *tracedConn) ResetSession(ctx context.Context) error    { return t.inner.ResetSession(ctx) }

// IsValid asks the inner connection if it can tell (SQLite's can, pgx's cannot); database/sql
// takes a connection without the method as valid.
func (t *tracedConn) IsValid() bool {
	if v, ok := t.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (t *tracedConn) CheckNamedValue(v *driver.NamedValue) error {
	return t.inner.CheckNamedValue(v)
}

// tracedTx is a transaction begun inside a sampled trace.
type tracedTx struct {
	inner driver.Tx
	ctx   context.Context
	c     *tracedConnector
}

func (t *tracedTx) Commit() error {
	_, span := t.c.start(t.ctx, "COMMIT", "")
	err := t.inner.Commit()
	end(span, err)
	return err
}

func (t *tracedTx) Rollback() error {
	_, span := t.c.start(t.ctx, "ROLLBACK", "")
	err := t.inner.Rollback()
	end(span, err)
	return err
}

// operation returns the first keyword of query in upper case ("INSERT" for "insert into …",
// "WITH" for a common table expression), skipping leading blanks, parentheses and "--"
// comment lines; "QUERY" when there is none. It names a statement's span, as the database
// semantic conventions do when the target is not known.
func operation(query string) string {
	q := strings.TrimLeft(query, " \t\r\n(")
	for strings.HasPrefix(q, "--") {
		_, q, _ = strings.Cut(q, "\n")
		q = strings.TrimLeft(q, " \t\r\n(")
	}
	n := 0
	for n < len(q) && (q[n]|0x20 >= 'a' && q[n]|0x20 <= 'z') {
		n++
	}
	if n == 0 {
		return "QUERY"
	}
	return strings.ToUpper(q[:n])
}
