// Package telemetrytest provides an in-process OTLP gRPC receiver for tests
// that need to see the spans a process exports: point
// telemetry.Config.OTLPEndpoint at the address StartOTLPReceiver returns
// (with OTLPInsecure set), and read what arrived.
package telemetrytest

import (
	"context"
	"encoding/hex"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metricscollectorpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	tracecollectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one exported span together with the resource and instrumentation
// scope it was exported under.
type Span struct {
	Resource *resourcepb.Resource
	Scope    *commonpb.InstrumentationScope
	Proto    *tracepb.Span
}

// Name returns the span's name.
func (s Span) Name() string { return s.Proto.GetName() }

// TraceID returns the span's trace id in lower-case hex, the form used by
// W3C traceparent headers and by trace.TraceID.String.
func (s Span) TraceID() string { return hex.EncodeToString(s.Proto.GetTraceId()) }

// SpanID returns the span's id in lower-case hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.Proto.GetSpanId()) }

// ParentSpanID returns the parent span's id in lower-case hex, or "" for a
// root span.
func (s Span) ParentSpanID() string { return hex.EncodeToString(s.Proto.GetParentSpanId()) }

// ServiceName returns the service.name resource attribute of the exporting
// process.
func (s Span) ServiceName() string { return s.ResourceAttr("service.name") }

// ResourceAttr returns a resource attribute rendered as a string, or "" when
// absent.
func (s Span) ResourceAttr(key string) string { return findAttr(s.Resource.GetAttributes(), key) }

// Attr returns a span attribute rendered as a string, or "" when absent.
func (s Span) Attr(key string) string { return findAttr(s.Proto.GetAttributes(), key) }

func findAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return anyValueString(kv.GetValue())
		}
	}
	return ""
}

func anyValueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	default:
		// Non-string values are rare in assertions; the proto text form is
		// unambiguous enough for them.
		return v.String()
	}
}

// receiver accepts OTLP trace and metric exports and keeps the spans.
type receiver struct {
	mu    sync.Mutex
	spans []Span
}

func (r *receiver) add(req *tracecollectorpb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Resource: rs.GetResource(), Scope: ss.GetScope(), Proto: sp})
			}
		}
	}
}

func (r *receiver) snapshot() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

type traceService struct {
	tracecollectorpb.UnimplementedTraceServiceServer
	r *receiver
}

func (s traceService) Export(_ context.Context, req *tracecollectorpb.ExportTraceServiceRequest) (*tracecollectorpb.ExportTraceServiceResponse, error) {
	s.r.add(req)
	return &tracecollectorpb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	metricscollectorpb.UnimplementedMetricsServiceServer
}

// Export accepts and discards metrics, so that a process exporting both
// signals to the receiver does not log (or return from Shutdown) errors.
func (metricsService) Export(context.Context, *metricscollectorpb.ExportMetricsServiceRequest) (*metricscollectorpb.ExportMetricsServiceResponse, error) {
	return &metricscollectorpb.ExportMetricsServiceResponse{}, nil
}

// StartOTLPReceiver starts an OTLP gRPC receiver (plaintext) on a free
// loopback port, stopped in t.Cleanup. It returns the "host:port" address and
// a function returning a snapshot of every span received so far, in arrival
// order. Metric exports are accepted and discarded.
func StartOTLPReceiver(t testing.TB) (addr string, spans func() []Span) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("telemetrytest: listen: %v", err)
	}
	r := &receiver{}
	srv := grpc.NewServer()
	tracecollectorpb.RegisterTraceServiceServer(srv, traceService{r: r})
	metricscollectorpb.RegisterMetricsServiceServer(srv, metricsService{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when Stop is called
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), r.snapshot
}

// AwaitSpans polls spans until cond holds for the snapshot or timeout
// elapses, and returns the satisfying snapshot. On timeout it fails the test,
// listing the spans that did arrive.
func AwaitSpans(t testing.TB, spans func() []Span, timeout time.Duration, cond func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := spans()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			names := make([]string, len(got))
			for i, s := range got {
				names[i] = s.ServiceName() + "/" + s.Name()
			}
			t.Fatalf("telemetrytest: condition not met within %v; received %d spans: [%s]",
				timeout, len(got), strings.Join(names, ", "))
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}
