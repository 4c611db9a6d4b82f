package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/piazza-social/piazza/platform/logging"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, b)
	}
	return m
}

func TestRecordsCarryTheTraceAndSpanOfTheirContext(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, logging.Config{Level: slog.LevelInfo, Service: "gateway"})
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()

	log.With("k", "v").InfoContext(ctx, "hello")

	m := decode(t, buf.Bytes())
	sc := span.SpanContext()
	if m["trace_id"] != sc.TraceID().String() || m["span_id"] != sc.SpanID().String() {
		t.Errorf("trace ids missing or wrong: %v", m)
	}
	if m["service"] != "gateway" || m["msg"] != "hello" || m["k"] != "v" {
		t.Errorf("unexpected record: %v", m)
	}
}

func TestRecordsWithoutASpanHaveNoTraceAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, logging.Config{Level: slog.LevelInfo})
	log.InfoContext(context.Background(), "plain")
	log.Debug("filtered out by level")

	m := decode(t, bytes.TrimSpace(buf.Bytes()))
	if _, ok := m["trace_id"]; ok {
		t.Errorf("trace_id without a span: %v", m)
	}
}

func BenchmarkLogWithTrace(b *testing.B) {
	log := logging.New(discard{}, logging.Config{Level: slog.LevelInfo})
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("bench").Start(context.Background(), "op")
	defer span.End()
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "request", slog.Int("status", 200))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
