package cassandra

import (
	"context"
	"log/slog"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// slogLogger routes the driver's own log lines (node up/down, reconnections, schema events)
// to the process's logger. The driver gives no context, so these lines carry no trace id.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Error(msg string, fields ...gocql.LogField) {
	l.emit(slog.LevelError, msg, fields)
}

func (l slogLogger) Warning(msg string, fields ...gocql.LogField) {
	l.emit(slog.LevelWarn, msg, fields)
}

func (l slogLogger) Info(msg string, fields ...gocql.LogField) {
	l.emit(slog.LevelInfo, msg, fields)
}

func (l slogLogger) Debug(msg string, fields ...gocql.LogField) {
	l.emit(slog.LevelDebug, msg, fields)
}

func (l slogLogger) emit(level slog.Level, msg string, fields []gocql.LogField) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(fields)+1)
	attrs = append(attrs, slog.String("component", "gocql"))
	for _, f := range fields {
		attrs = append(attrs, slog.Any(f.Name, f.Value.Any()))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// tracer records one client span per request attempt, parented by the caller's context
// (ExecContext, ScanContext, IterContext...). The driver reports a request after it finished, so the
// span is created with its real start and end times. Bound values are never recorded: they
// may hold personal data.
type tracer struct{ tracer trace.Tracer }

func (t *tracer) ObserveQuery(ctx context.Context, q gocql.ObservedQuery) {
	t.record(ctx, operation(q.Statement), q.Keyspace, q.Statement, q.Host, q.Attempt, q.Err, q.Start, q.End)
}

func (t *tracer) ObserveBatch(ctx context.Context, b gocql.ObservedBatch) {
	t.record(ctx, "BATCH", b.Keyspace, strings.Join(b.Statements, "; "), b.Host, b.Attempt, b.Err, b.Start, b.End)
}

func (t *tracer) record(ctx context.Context, op, keyspace, statement string, host *gocql.HostInfo, attempt int, err error, start, end time.Time) {
	if ctx == nil {
		ctx = context.Background()
	}
	attrs := []attribute.KeyValue{
		attribute.String("db.system.name", "cassandra"),
		attribute.String("db.operation.name", op),
		attribute.String("db.query.text", statement),
	}
	if keyspace != "" {
		attrs = append(attrs, attribute.String("db.namespace", keyspace))
	}
	if host != nil {
		attrs = append(attrs, attribute.String("server.address", host.ConnectAddress().String()),
			attribute.Int("server.port", host.Port()))
	}
	if attempt > 0 {
		attrs = append(attrs, attribute.Int("cassandra.attempt", attempt))
	}
	name := "cassandra " + op
	_, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
}

// operation returns the statement's first keyword in upper case ("SELECT", "CREATE"), the
// span name's low-cardinality part.
func operation(statement string) string {
	f := strings.Fields(statement)
	if len(f) == 0 {
		return "QUERY"
	}
	return strings.ToUpper(f[0])
}
