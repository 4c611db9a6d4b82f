package database_test

import (
	"context"
	"database/sql"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
)

func TestSQLiteStatementsAreSpansOfTheCallersTraceOnly(t *testing.T) {
	testStatementSpans(t, databasetest.SQLiteURL(t), "sqlite")
}

// testStatementSpans checks, on the database at url, that statements run inside a sampled
// trace are client spans under the caller's span, and that no span is made outside a trace
// or inside an unsampled one.
func testStatementSpans(t *testing.T, url, system string) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx := context.Background()
	db, err := database.Open(ctx, database.Config{URL: url, TracerProvider: tp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// Outside a trace (a poller, a migration at start-up): nothing.
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE traced (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// Inside an unsampled trace: nothing either.
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	uctx, u := unsampled.Tracer("test").Start(ctx, "unsampled")
	if _, err := db.SQL().ExecContext(uctx, `INSERT INTO traced (id, v) VALUES ($1, $2)`, 1, "secret-1"); err != nil {
		t.Fatal(err)
	}
	u.End()
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans made outside a sampled trace: %v", n, names(rec.Ended()))
	}

	rctx, request := tp.Tracer("test").Start(ctx, "request")
	err = db.InTx(rctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(rctx, `INSERT INTO traced (id, v) VALUES ($1, $2)`, 2, "secret-2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.SQL().QueryRowContext(rctx, `SELECT v FROM traced WHERE id = $1`, 2).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(rctx, `INSERT INTO missing_table (id) VALUES ($1)`, 3); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
	request.End()

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	inserts, selects, txs := byName["INSERT"], byName["SELECT"], byName["database.InTx"]
	if len(inserts) != 2 || len(selects) != 1 || len(txs) != 1 {
		t.Fatalf("spans %v, want two INSERT, one SELECT and the transaction", names(rec.Ended()))
	}
	reqID := request.SpanContext().SpanID()
	for _, s := range append(append([]sdktrace.ReadOnlySpan{}, inserts...), selects...) {
		if s.SpanKind() != trace.SpanKindClient || s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("%s: kind %v, trace %s; want a client span of the request's trace", s.Name(), s.SpanKind(), s.SpanContext().TraceID())
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
			if kv.Value.String() == "secret-2" {
				t.Errorf("%s records a parameter value", s.Name())
			}
		}
		if attrs["db.system.name"] != system || attrs["db.operation.name"] != s.Name() || attrs["db.query.text"] == "" {
			t.Errorf("%s: attributes %v", s.Name(), attrs)
		}
	}
	// Statements are children of the span of the ctx they are given (InTx's function gets no
	// ctx of its own); the transaction's begin and commit are under the transaction span.
	for _, s := range []sdktrace.ReadOnlySpan{inserts[0], inserts[1], selects[0], txs[0]} {
		if s.Parent().SpanID() != reqID {
			t.Errorf("%s is not a child of the request span", s.Name())
		}
	}
	for _, name := range []string{"BEGIN", "COMMIT"} {
		if got := byName[name]; len(got) != 1 || got[0].Parent().SpanID() != txs[0].SpanContext().SpanID() {
			t.Errorf("%s: %d spans, want one under the transaction span", name, len(got))
		}
	}
	if inserts[1].Status().Code != codes.Error {
		t.Errorf("the failing INSERT has status %v, want an error", inserts[1].Status())
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}
