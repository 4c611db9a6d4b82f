// Package telemetry sets up the process-wide OpenTelemetry pipeline: one
// resource describing the process, one TracerProvider, one MeterProvider and
// the W3C propagator, all built from a Config that the binary fills from its
// flags (this package never reads the environment itself).
//
// Metrics are exposed two ways at once: pulled by Prometheus from a private
// prometheus.Registry owned by the Telemetry value (served by MetricsHandler,
// together with the Go runtime and process collectors), and pushed over OTLP
// gRPC when Config.OTLPEndpoint is set. Traces are exported over OTLP gRPC
// when the endpoint is set; without one the TracerProvider is still real, so
// spans carry valid trace and span ids that logs and error responses can quote.
//
// Setup also installs the providers, the propagator and an error handler as
// the OpenTelemetry globals (otel.SetTracerProvider and friends). That is the
// one deliberate global state in the project: instrumentation libraries
// (otelhttp, otelgrpc, client libraries) read the globals when they are not
// handed a provider explicitly, and a second, divergent pipeline would lose
// spans. Project code still receives providers through its config structs.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by Setup to zero-valued Config fields.
const (
	DefaultSampleRatio          = 1.0
	DefaultMetricExportInterval = 60 * time.Second
	DefaultExportTimeout        = 10 * time.Second
)

// Config describes the telemetry pipeline of one process.
type Config struct {
	// ServiceName is the resource's service.name. Required.
	ServiceName string
	// ServiceVersion is the resource's service.version (e.g. the build's
	// version string). Optional.
	ServiceVersion string
	// InstanceID is the resource's service.instance.id. When empty a random
	// UUID is used, so two replicas never share an identity.
	InstanceID string

	// OTLPEndpoint is the OTLP gRPC collector address, either "host:port" or
	// a URL ("http://host:4317", "https://host:4317"; a URL's scheme decides
	// TLS and overrides OTLPInsecure). Empty disables OTLP export of both
	// traces and metrics; Prometheus scraping and in-process trace ids keep
	// working.
	OTLPEndpoint string
	// OTLPInsecure disables TLS towards a "host:port" OTLPEndpoint (a local
	// collector or sidecar).
	OTLPInsecure bool
	// OTLPHeaders are sent with every OTLP export (e.g. an auth token).
	OTLPHeaders map[string]string
	// ExportTimeout bounds one OTLP export call. Default DefaultExportTimeout.
	ExportTimeout time.Duration
	// MetricExportInterval is the OTLP metric push period. Default
	// DefaultMetricExportInterval. Prometheus scrapes are unaffected.
	MetricExportInterval time.Duration

	// SampleRatio is the fraction of root traces that are sampled, in (0, 1].
	// Zero means DefaultSampleRatio (everything). Child spans follow their
	// parent's decision (parent-based sampling), so a trace is never cut in
	// half between services.
	SampleRatio float64

	// DisableGlobals skips installing the providers and propagator as the
	// OpenTelemetry globals. Production code leaves it false; it exists for
	// tests that build several Telemetry values in one process.
	DisableGlobals bool
}

// Telemetry owns the process's providers and its private Prometheus
// registry. Create it with Setup and call Shutdown before the process exits.
type Telemetry struct {
	resource       *resource.Resource
	tracerProvider *sdktrace.TracerProvider
	meterProvider  *sdkmetric.MeterProvider
	propagator     propagation.TextMapPropagator
	registry       *prometheus.Registry
	metricsHandler http.Handler

	shutdownOnce sync.Once
	shutdownErr  error
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if strings.TrimSpace(cfg.ServiceName) == "" {
		return cfg, errors.New("telemetry: Config.ServiceName is required")
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = uuid.NewString()
	}
	if cfg.SampleRatio == 0 {
		cfg.SampleRatio = DefaultSampleRatio
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return cfg, fmt.Errorf("telemetry: Config.SampleRatio %v is outside (0, 1]", cfg.SampleRatio)
	}
	if cfg.ExportTimeout == 0 {
		cfg.ExportTimeout = DefaultExportTimeout
	}
	if cfg.ExportTimeout < 0 {
		return cfg, fmt.Errorf("telemetry: Config.ExportTimeout %v is negative", cfg.ExportTimeout)
	}
	if cfg.MetricExportInterval == 0 {
		cfg.MetricExportInterval = DefaultMetricExportInterval
	}
	if cfg.MetricExportInterval < 0 {
		return cfg, fmt.Errorf("telemetry: Config.MetricExportInterval %v is negative", cfg.MetricExportInterval)
	}
	return cfg, nil
}

// Setup builds the telemetry pipeline described by cfg and, unless
// cfg.DisableGlobals is set, installs it as the OpenTelemetry globals.
// log receives OpenTelemetry's internal errors (failed exports and the like);
// nil discards them. Setup does not wait for the OTLP endpoint to be
// reachable: exporters connect lazily and retry.
func Setup(ctx context.Context, cfg Config, log *slog.Logger) (*Telemetry, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	// The registry is private so that two Telemetry values (tests) or a
	// library registering on prometheus.DefaultRegisterer can never collide
	// with, or leak into, what this process serves.
	registry := prometheus.NewRegistry()
	if err := registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: register Go collector: %w", err)
	}
	if err := registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: register process collector: %w", err)
	}
	promExporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: create Prometheus exporter: %w", err)
	}

	// The exemplar filter and sampler are set explicitly because the SDK
	// would otherwise take them from OTEL_* environment variables.
	meterOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(promExporter),
		sdkmetric.WithExemplarFilter(exemplar.TraceBasedFilter),
	}
	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}

	if cfg.OTLPEndpoint != "" {
		traceExporter, err := otlptracegrpc.New(ctx, otlpTraceOptions(cfg)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: create OTLP trace exporter: %w", err)
		}
		metricExporter, err := otlpmetricgrpc.New(ctx, otlpMetricOptions(cfg)...)
		if err != nil {
			_ = traceExporter.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: create OTLP metric exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(traceExporter,
			sdktrace.WithExportTimeout(cfg.ExportTimeout)))
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExporter,
			sdkmetric.WithInterval(cfg.MetricExportInterval),
			sdkmetric.WithTimeout(cfg.ExportTimeout))))
	}

	t := &Telemetry{
		resource:       res,
		tracerProvider: sdktrace.NewTracerProvider(traceOpts...),
		meterProvider:  sdkmetric.NewMeterProvider(meterOpts...),
		propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		registry:       registry,
		metricsHandler: promhttp.HandlerFor(registry, promhttp.HandlerOpts{
			// OpenMetrics is the only exposition format that carries
			// exemplars, which link a latency bucket to a trace id.
			EnableOpenMetrics: true,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
			// Serve what could be gathered rather than failing the scrape.
			ErrorHandling: promhttp.ContinueOnError,
		}),
	}

	if !cfg.DisableGlobals {
		otel.SetTracerProvider(t.tracerProvider)
		otel.SetMeterProvider(t.meterProvider)
		otel.SetTextMapPropagator(t.propagator)
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Error("opentelemetry error", slog.Any("error", err))
		}))
	}

	log.InfoContext(ctx, "telemetry configured",
		slog.String("service_name", cfg.ServiceName),
		slog.String("service_instance_id", cfg.InstanceID),
		slog.Bool("otlp_export", cfg.OTLPEndpoint != ""),
		slog.String("otlp_endpoint", cfg.OTLPEndpoint),
		slog.Float64("sample_ratio", cfg.SampleRatio))
	return t, nil
}

// newResource describes this process. It deliberately avoids
// resource.Default and resource.WithFromEnv (which read OTEL_* variables)
// and process command-line arguments (which may hold secrets such as
// database URLs).
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceInstanceID(cfg.InstanceID),
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithOSType(),
		resource.WithProcessPID(),
		resource.WithProcessExecutableName(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithProcessRuntimeDescription(),
	)
	// resource.New returns partial results with ErrPartialResource when a
	// detector (e.g. hostname) fails; a partially described process is
	// still better than no telemetry.
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: build resource: %w", err)
	}
	return res, nil
}

// endpointIsURL reports whether the OTLP endpoint was given as a URL rather
// than "host:port".
func endpointIsURL(endpoint string) bool {
	return strings.Contains(endpoint, "://")
}

func otlpTraceOptions(cfg Config) []otlptracegrpc.Option {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(cfg.ExportTimeout)}
	if endpointIsURL(cfg.OTLPEndpoint) {
		opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint))
	} else {
		opts = append(opts, otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint))
		if cfg.OTLPInsecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
	}
	if len(cfg.OTLPHeaders) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(cfg.OTLPHeaders))
	}
	return opts
}

func otlpMetricOptions(cfg Config) []otlpmetricgrpc.Option {
	opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithTimeout(cfg.ExportTimeout)}
	if endpointIsURL(cfg.OTLPEndpoint) {
		opts = append(opts, otlpmetricgrpc.WithEndpointURL(cfg.OTLPEndpoint))
	} else {
		opts = append(opts, otlpmetricgrpc.WithEndpoint(cfg.OTLPEndpoint))
		if cfg.OTLPInsecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
	}
	if len(cfg.OTLPHeaders) > 0 {
		opts = append(opts, otlpmetricgrpc.WithHeaders(cfg.OTLPHeaders))
	}
	return opts
}

// TracerProvider returns the process's tracer provider.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tracerProvider }

// MeterProvider returns the process's meter provider. Instruments created
// from it appear on MetricsHandler and, when configured, in OTLP exports.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meterProvider }

// Propagator returns the composite W3C TraceContext + Baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.propagator }

// Registry returns the private Prometheus registry behind MetricsHandler,
// for components that expose native Prometheus collectors.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Resource returns the resource attached to every span and metric.
func (t *Telemetry) Resource() *resource.Resource { return t.resource }

// MetricsHandler serves the registry in the Prometheus text format or, when
// the scraper asks for it, OpenMetrics with exemplars.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metricsHandler }

// Shutdown flushes pending spans and metrics and stops both providers. It
// waits for in-flight exports until ctx is done, so the caller should pass a
// context with a deadline. Calls after the first return the first result.
// The OpenTelemetry globals are left in place; spans started afterwards are
// simply dropped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		// Traces first: ending spans may still record metrics.
		traceErr := t.tracerProvider.Shutdown(ctx)
		if traceErr != nil {
			traceErr = fmt.Errorf("telemetry: shut down tracer provider: %w", traceErr)
		}
		meterErr := t.meterProvider.Shutdown(ctx)
		if meterErr != nil {
			meterErr = fmt.Errorf("telemetry: shut down meter provider: %w", meterErr)
		}
		t.shutdownErr = errors.Join(traceErr, meterErr)
	})
	return t.shutdownErr
}
