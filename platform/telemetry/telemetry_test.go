package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/telemetry"
	"github.com/piazza-social/piazza/platform/telemetry/telemetrytest"
)

// setup builds a Telemetry that does not touch the OpenTelemetry globals and
// is shut down when the test ends.
func setup(t *testing.T, cfg telemetry.Config) *telemetry.Telemetry {
	t.Helper()
	if cfg.ServiceName == "" {
		cfg.ServiceName = "piazza-test"
	}
	cfg.DisableGlobals = true
	tel, err := telemetry.Setup(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

// scrape fetches the metrics handler's output; accept selects the format.
func scrape(t *testing.T, tel *telemetry.Telemetry, accept string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler status = %d, body:\n%s", rec.Code, rec.Body.String())
	}
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func TestSpansHaveValidIDsWithoutOTLPEndpoint(t *testing.T) {
	tel := setup(t, telemetry.Config{})

	ctx, parent := tel.TracerProvider().Tracer("test").Start(t.Context(), "parent")
	_, child := tel.TracerProvider().Tracer("test").Start(ctx, "child")
	defer parent.End()
	defer child.End()

	psc, csc := parent.SpanContext(), child.SpanContext()
	if !psc.TraceID().IsValid() || !psc.SpanID().IsValid() {
		t.Fatalf("parent span context has invalid ids: %v / %v", psc.TraceID(), psc.SpanID())
	}
	if !psc.IsSampled() {
		t.Error("root span not sampled with the default ratio of 1")
	}
	if csc.TraceID() != psc.TraceID() {
		t.Errorf("child trace id %v, want parent's %v", csc.TraceID(), psc.TraceID())
	}
	if csc.SpanID() == psc.SpanID() || !csc.SpanID().IsValid() {
		t.Errorf("child span id %v is invalid or equals the parent's", csc.SpanID())
	}
}

func TestCounterRecordedThroughMeterProviderIsServed(t *testing.T) {
	tel := setup(t, telemetry.Config{})

	counter, err := tel.MeterProvider().Meter("piazza/test").Int64Counter("piazza_test_widgets")
	if err != nil {
		t.Fatalf("create counter: %v", err)
	}
	counter.Add(t.Context(), 3)
	counter.Add(t.Context(), 4)

	body := scrape(t, tel, "")
	if !containsLineWithPrefixAndSuffix(body, "piazza_test_widgets_total{", " 7") {
		t.Errorf("scrape lacks piazza_test_widgets_total 7:\n%s", body)
	}
}

func TestGoRuntimeAndProcessMetricsAreServed(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	body := scrape(t, tel, "")
	for _, name := range []string{"go_goroutines ", "go_memstats_alloc_bytes ", "process_cpu_seconds_total ", "process_open_fds "} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("scrape lacks %q", strings.TrimSpace(name))
		}
	}
}

func TestResourceDescribesServiceAndProcess(t *testing.T) {
	tel := setup(t, telemetry.Config{ServiceName: "post", ServiceVersion: "1.2.3", InstanceID: "post-7"})

	want := map[string]string{
		"service.name":        "post",
		"service.version":     "1.2.3",
		"service.instance.id": "post-7",
	}
	got := map[string]string{}
	for _, kv := range tel.Resource().Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resource %s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"host.name", "process.pid", "process.runtime.name"} {
		if got[k] == "" {
			t.Errorf("resource lacks %s", k)
		}
	}
	if _, ok := got["process.command_args"]; ok {
		t.Error("resource carries process.command_args, which may hold secrets")
	}

	// The resource also reaches Prometheus as target_info.
	body := scrape(t, tel, "")
	if !strings.Contains(body, `service_instance_id="post-7"`) {
		t.Errorf("target_info lacks service_instance_id:\n%s", body)
	}
}

func TestInstanceIDDefaultsToUniqueValue(t *testing.T) {
	a := setup(t, telemetry.Config{})
	b := setup(t, telemetry.Config{})
	ida := instanceID(a.Resource())
	idb := instanceID(b.Resource())
	if ida == "" || ida == idb {
		t.Errorf("default instance ids %q and %q are empty or equal", ida, idb)
	}
}

func instanceID(r *resource.Resource) string {
	for _, kv := range r.Attributes() {
		if kv.Key == "service.instance.id" {
			return kv.Value.String()
		}
	}
	return ""
}

func TestOpenMetricsScrapeCarriesExemplarWithTraceID(t *testing.T) {
	tel := setup(t, telemetry.Config{})

	counter, err := tel.MeterProvider().Meter("piazza/test").Int64Counter("piazza_test_requests")
	if err != nil {
		t.Fatalf("create counter: %v", err)
	}
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "request")
	counter.Add(ctx, 1)
	span.End()

	body := scrape(t, tel, "application/openmetrics-text; version=1.0.0; charset=utf-8")
	want := `trace_id="` + span.SpanContext().TraceID().String() + `"`
	if !strings.Contains(body, want) {
		t.Errorf("OpenMetrics scrape lacks exemplar %s:\n%s", want, body)
	}
}

func TestSpansAreExportedToOTLPEndpointByShutdown(t *testing.T) {
	addr, spans := telemetrytest.StartOTLPReceiver(t)
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{
		ServiceName:    "gateway",
		OTLPEndpoint:   addr,
		OTLPInsecure:   true,
		DisableGlobals: true,
	}, nil)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}

	// Record a metric too: the OTLP metric exporter flushes on Shutdown and
	// must succeed against the same endpoint.
	counter, err := tel.MeterProvider().Meter("piazza/test").Int64Counter("piazza_test_events")
	if err != nil {
		t.Fatalf("create counter: %v", err)
	}
	counter.Add(t.Context(), 1)
	_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "exported-span")
	span.End()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// Shutdown flushes synchronously, so the span must already be there.
	got := spans()
	if len(got) != 1 {
		t.Fatalf("receiver got %d spans, want 1", len(got))
	}
	if got[0].Name() != "exported-span" {
		t.Errorf("span name = %q, want exported-span", got[0].Name())
	}
	if got[0].ServiceName() != "gateway" {
		t.Errorf("span service.name = %q, want gateway", got[0].ServiceName())
	}
	if got[0].TraceID() != span.SpanContext().TraceID().String() {
		t.Errorf("exported trace id %s, want %s", got[0].TraceID(), span.SpanContext().TraceID())
	}
}

func TestShutdownIsIdempotent(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	for i := range 2 {
		if err := tel.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown #%d: %v", i+1, err)
		}
	}
}

func TestSetupRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  telemetry.Config
	}{
		{"missing service name", telemetry.Config{}},
		{"blank service name", telemetry.Config{ServiceName: "  "}},
		{"sample ratio above one", telemetry.Config{ServiceName: "x", SampleRatio: 1.5}},
		{"negative sample ratio", telemetry.Config{ServiceName: "x", SampleRatio: -0.1}},
		{"negative export timeout", telemetry.Config{ServiceName: "x", ExportTimeout: -time.Second}},
		{"negative metric interval", telemetry.Config{ServiceName: "x", MetricExportInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DisableGlobals = true
			tel, err := telemetry.Setup(t.Context(), tt.cfg, nil)
			if err == nil {
				_ = tel.Shutdown(t.Context())
				t.Fatal("Setup succeeded, want an error")
			}
		})
	}
}

// TestSetupInstallsGlobals changes process-wide state, so it must not run in
// parallel with other tests.
func TestSetupInstallsGlobals(t *testing.T) {
	prevTP, prevMP, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
	})

	tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "global"}, nil)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	if otel.GetTracerProvider() != tel.TracerProvider() {
		t.Error("global tracer provider is not the Telemetry's")
	}
	if otel.GetMeterProvider() != tel.MeterProvider() {
		t.Error("global meter provider is not the Telemetry's")
	}

	// The global propagator round-trips both W3C trace context and baggage.
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "outbound")
	defer span.End()
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if carrier.Get("traceparent") == "" {
		t.Fatalf("global propagator injected no traceparent: %v", carrier)
	}
	extracted := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), carrier))
	if extracted.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("extracted trace id %v, want %v", extracted.TraceID(), span.SpanContext().TraceID())
	}
	fields := tel.Propagator().Fields()
	if !slices.Contains(fields, "traceparent") || !slices.Contains(fields, "baggage") {
		t.Errorf("propagator fields = %v, want traceparent and baggage", fields)
	}
}

func TestDisableGlobalsLeavesGlobalsAlone(t *testing.T) {
	before := otel.GetTracerProvider()
	tel := setup(t, telemetry.Config{})
	if otel.GetTracerProvider() != before || otel.GetTracerProvider() == tel.TracerProvider() {
		t.Error("Setup with DisableGlobals replaced the global tracer provider")
	}
}

func TestRegistryIsPrivate(t *testing.T) {
	a := setup(t, telemetry.Config{})
	b := setup(t, telemetry.Config{})
	if a.Registry() == b.Registry() {
		t.Fatal("two Telemetry values share a registry")
	}
	// Building two pipelines in one process would panic or fail with
	// duplicate registrations if they shared the default registry; also
	// check that nothing reached it.
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather default registry: %v", err)
	}
	for _, f := range families {
		if f.GetName() == "target_info" {
			t.Error("default registry received OpenTelemetry metrics (target_info)")
		}
	}
}

func containsLineWithPrefixAndSuffix(body, prefix, suffix string) bool {
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, suffix) {
			return true
		}
	}
	return false
}
