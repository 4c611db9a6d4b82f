// Package logging builds the project's structured logger: log/slog JSON records that carry the
// trace_id and span_id of the context they are logged with, so a log line in Loki leads to its
// trace in Tempo. Log with the *Context methods (log.InfoContext(ctx, ...)) to get them.
package logging

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the attributes added from the span context.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// Config describes a logger.
type Config struct {
	// Level is the minimum level written; a *slog.LevelVar lets it change at run time.
	Level slog.Leveler
	// Service names the emitting service on every record (empty: omitted).
	Service string
	// AddSource adds the file and line of the call site.
	AddSource bool
}

// New returns a JSON logger writing to w.
func New(w io.Writer, cfg Config) *slog.Logger {
	h := slog.Handler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.Level, AddSource: cfg.AddSource}))
	h = NewTraceHandler(h)
	log := slog.New(h)
	if cfg.Service != "" {
		log = log.With(slog.String("service", cfg.Service))
	}
	return log
}

// TraceHandler wraps a handler and adds trace_id and span_id to each record whose context holds
// a valid span context.
type TraceHandler struct{ next slog.Handler }

// NewTraceHandler wraps next.
func NewTraceHandler(next slog.Handler) *TraceHandler { return &TraceHandler{next: next} }

// Enabled reports whether next handles level.
func (h *TraceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the trace attributes and passes the record on.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(TraceIDKey, sc.TraceID().String()), slog.String(SpanIDKey, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a TraceHandler over next.WithAttrs.
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &TraceHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a TraceHandler over next.WithGroup. Trace attributes of records logged
// through a grouped logger land inside the group; keep groups off request loggers.
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	return &TraceHandler{next: h.next.WithGroup(name)}
}

// Discard returns a logger that writes nothing, for tests and benchmarks.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
