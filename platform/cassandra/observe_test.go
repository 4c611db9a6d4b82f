package cassandra

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestDriverLogLinesGoToTheLoggerWithTheirFields(t *testing.T) {
	var buf bytes.Buffer
	l := slogLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Warning("host down", gocql.NewLogFieldString("host", "10.0.0.1"), gocql.NewLogFieldInt("port", 9042))
	l.Debug("too chatty")
	out := buf.String()
	for _, want := range []string{"level=WARN", `msg="host down"`, "host=10.0.0.1", "port=9042", "component=gocql"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "too chatty") {
		t.Error("a debug line passed an info logger")
	}
}

func TestEachRequestBecomesAClientSpanUnderTheCallersSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := &tracer{tracer: tp.Tracer("test")}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	start := time.Now().Add(-time.Second)
	tr.ObserveQuery(ctx, gocql.ObservedQuery{Keyspace: "ks", Statement: "SELECT * FROM t WHERE k = ?", Values: []any{"secret"},
		Start: start, End: start.Add(5 * time.Millisecond), Err: errors.New("timeout")})
	parent.End()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the request's and the parent", len(spans))
	}
	s := spans[0]
	if s.Name() != "cassandra SELECT" || s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q kind %v parent %v; want a client span named cassandra SELECT under the caller's", s.Name(), s.SpanKind(), s.Parent().SpanID())
	}
	if !s.StartTime().Equal(start) || s.EndTime().Sub(s.StartTime()) != 5*time.Millisecond {
		t.Errorf("span times %v..%v, want the request's own", s.StartTime(), s.EndTime())
	}
	if s.Status().Description != "timeout" {
		t.Errorf("status %+v, want the error", s.Status())
	}
	for _, a := range s.Attributes() {
		if strings.Contains(a.Value.String(), "secret") {
			t.Errorf("attribute %s holds a bound value", a.Key)
		}
	}
}
