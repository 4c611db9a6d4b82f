package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// ChildSpansOnly wraps tp so that its tracers make spans only inside a sampled trace: Start
// with a context whose span is missing or not sampled returns that context unchanged and a
// no-op span (ending it ends nothing). Hand it to the instrumentation of clients that are also
// used in the background, such as a Redis client's hooks: a request's commands then appear in
// its trace, while a heartbeat or a sweeper does not start a trace of its own for each
// command, and an unsampled request costs no span at all.
func ChildSpansOnly(tp trace.TracerProvider) trace.TracerProvider {
	return childSpansProvider{tp: tp}
}

type childSpansProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (p childSpansProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childSpansTracer{t: p.tp.Tracer(name, opts...)}
}

type childSpansTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (t childSpansTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		// The span of an empty context is OpenTelemetry's shared no-op span: no allocation.
		return ctx, trace.SpanFromContext(context.Background())
	}
	return t.t.Start(ctx, name, opts...)
}
