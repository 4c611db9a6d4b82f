// Package gateway is gateway-service: the public HTTP API of Piazza. It authenticates callers,
// validates requests at the edge, calls the owning services over gRPC, and (in later work)
// holds browsers' Server-Sent Events streams. Every error it returns is an RFC 9457 problem
// document carrying the request's trace id.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api"
	"github.com/piazza-social/piazza/platform/web"
)

// Config configures the gateway.
type Config struct {
	// Addr is the public listen address, e.g. 127.0.0.1:8080.
	Addr string
	// RequestTimeout bounds one non-streaming request.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the drain on shutdown.
	ShutdownTimeout time.Duration

	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Service is a running gateway instance.
type Service struct {
	router *web.Router
	server *web.Server
	rs     *web.Responder
	routes []string
}

// New builds the gateway and its routes; it listens only when Run is called.
func New(cfg Config, log *slog.Logger) *Service {
	log = log.With(slog.String("service", "gateway"))
	s := &Service{
		rs: web.NewResponder(log),
		router: web.NewRouter(web.RouterConfig{Middleware: web.Stack(web.StackConfig{
			TracerProvider: cfg.TracerProvider,
			MeterProvider:  cfg.MeterProvider,
			Propagator:     cfg.Propagator,
			Timeout:        cfg.RequestTimeout,
			BodyLimit:      cfg.MaxBodyBytes,
		}, log)}, log),
	}
	s.handle("GET /v1/openapi.json", http.HandlerFunc(s.openAPI))
	s.server = web.NewServer(web.ServerConfig{Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout}, s.router, log)
	return s
}

// handle registers a route and remembers its pattern, so tests can hold the server to its
// OpenAPI document.
func (s *Service) handle(pattern string, h http.Handler) {
	s.router.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Handler is the public API, middleware included; tests serve it with httptest.
func (s *Service) Handler() http.Handler { return s.router }

// Routes lists the registered patterns ("METHOD /path").
func (s *Service) Routes() []string { return s.routes }

// Run serves the public API until ctx is cancelled, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error { return s.server.Run(ctx) }

// Ready is closed once the public listener is bound.
func (s *Service) Ready() <-chan struct{} { return s.server.Ready() }

func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(api.OpenAPI)
}
