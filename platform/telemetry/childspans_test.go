package telemetry_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/piazza-social/piazza/platform/telemetry"
)

func TestChildSpansOnlyMakesSpansInsideSampledTracesAlone(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := telemetry.ChildSpansOnly(tp).Tracer("client")

	// No trace: the context comes back unchanged, and the span is a no-op.
	ctx := context.Background()
	got, span := tracer.Start(ctx, "background command")
	span.End()
	if got != ctx || span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("outside a trace: context changed %v, span recording %v, valid %v", got != ctx, span.IsRecording(), span.SpanContext().IsValid())
	}

	// An unsampled trace: nothing either, and ending the no-op span leaves the caller's alone.
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	uctx, unsampled := never.Tracer("test").Start(ctx, "unsampled request")
	_, span = tracer.Start(uctx, "command of an unsampled request")
	span.End()
	unsampled.End()

	// A sampled trace: a real child.
	rctx, request := tp.Tracer("test").Start(ctx, "request")
	_, span = tracer.Start(rctx, "command")
	if !request.IsRecording() {
		t.Fatal("the request span is not recording")
	}
	span.End()
	request.End()

	ended := rec.Ended()
	if len(ended) != 2 || ended[0].Name() != "command" || ended[0].Parent().SpanID() != request.SpanContext().SpanID() {
		var names []string
		for _, s := range ended {
			names = append(names, s.Name())
		}
		t.Fatalf("spans %v, want only the command under the sampled request, then the request", names)
	}
}
