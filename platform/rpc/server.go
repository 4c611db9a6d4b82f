// Package rpc is Piazza's gRPC layer: a server ([NewServer]) and a client
// connection ([Dial]) with OpenTelemetry tracing and metrics, panic
// recovery, logging, keepalive and the platform's error model on both ends.
//
// Handlers return platform/errs errors; the server encodes them as gRPC
// statuses whose details keep the exact code, and the client decodes them
// back into *errs.Error, so a not_found or token_expired raised three
// services away reaches the HTTP edge unchanged. Errors that are not
// *errs.Error become internal errors, and their text never leaves the
// process.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// ServerConfig configures a [Server]. Zero fields take the defaults.
type ServerConfig struct {
	// Addr is the TCP address [Server.Run] listens on; default ":9090".
	Addr string
	// TracerProvider, MeterProvider and Propagator feed the otelgrpc stats
	// handler; nil means the otel globals. The propagator must understand
	// the callers' context (W3C trace context) for traces to join up.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// ShutdownTimeout bounds the graceful stop after the Run context is
	// cancelled; the server is then stopped hard. Default 10s.
	ShutdownTimeout time.Duration
	// MaxRecvMsgSize bounds incoming messages; default 4 MiB.
	MaxRecvMsgSize int
	// KeepaliveMinTime is the shortest client ping interval tolerated
	// (clients pinging more often are disconnected); default 10s. Clients
	// made by [Dial] ping every 30s by default.
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may be idle before the server
	// pings it; KeepaliveTimeout how long it waits for the answer.
	// Defaults 60s and 20s.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// UnaryInterceptors and StreamInterceptors run after the platform's
	// (error mapping, logging, recovery), closest to the handler; their
	// panics are recovered and their errors mapped.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
}

func (c *ServerConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":9090"
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = otel.GetTextMapPropagator()
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.MaxRecvMsgSize <= 0 {
		c.MaxRecvMsgSize = 4 << 20
	}
	if c.KeepaliveMinTime <= 0 {
		c.KeepaliveMinTime = 10 * time.Second
	}
	if c.KeepaliveTime <= 0 {
		c.KeepaliveTime = 60 * time.Second
	}
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = 20 * time.Second
	}
}

// Server is a gRPC server with the platform's instrumentation and the
// standard health service (grpc.health.v1.Health). Services register on it
// (it is a grpc.ServiceRegistrar) before it runs.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	grpc   *grpc.Server
	health *health.Server
	ready  chan struct{}
	addr   net.Addr // set before ready is closed
	once   sync.Once
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// NewServer returns a Server; it listens only when run. The health service
// reports SERVING for the whole server ("") until shutdown begins.
func NewServer(cfg ServerConfig, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unary := append([]grpc.UnaryServerInterceptor{
		unaryMapErrors(),
		unaryLog(log),
		unaryRecover(log),
	}, cfg.UnaryInterceptors...)
	stream := append([]grpc.StreamServerInterceptor{
		streamMapErrors(),
		streamLog(log),
		streamRecover(log),
	}, cfg.StreamInterceptors...)
	s := &Server{
		cfg:    cfg,
		log:    log,
		health: health.NewServer(),
		ready:  make(chan struct{}),
	}
	s.grpc = grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(cfg.TracerProvider),
			otelgrpc.WithMeterProvider(cfg.MeterProvider),
			otelgrpc.WithPropagators(cfg.Propagator),
		)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: cfg.KeepaliveMinTime,
			// Clients keep idle connections alive (see Dial), so allow
			// pings without active streams.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    cfg.KeepaliveTime,
			Timeout: cfg.KeepaliveTimeout,
		}),
	)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s
}

// RegisterService registers a service implementation; generated
// RegisterXxxServer functions take the Server directly.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// Registrar returns the underlying registrar (the *grpc.Server), for APIs
// that want one explicitly.
func (s *Server) Registrar() grpc.ServiceRegistrar { return s.grpc }

// SetServingStatus sets what the health service reports for service
// (a fully qualified service name, or "" for the server as a whole).
func (s *Server) SetServingStatus(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
}

// Run listens on cfg.Addr and serves until ctx is cancelled; see [Server.Serve].
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("rpc: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled. It then reports NOT_SERVING
// on the health service, stops accepting, lets in-flight calls finish for
// up to ShutdownTimeout (then stops hard and returns an error), and
// returns nil. A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	served := false
	s.once.Do(func() { served = true })
	if !served {
		_ = ln.Close()
		return errors.New("rpc: Server already served")
	}
	s.addr = ln.Addr()
	close(s.ready)
	s.log.InfoContext(ctx, "grpc server listening", slog.String("addr", s.addr.String()))

	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("rpc: serve on %s: %w", s.addr, err)
	case <-ctx.Done():
	}

	s.log.InfoContext(ctx, "grpc server draining", slog.String("timeout", s.cfg.ShutdownTimeout.String()))
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-stopped:
	case <-timer.C:
		s.grpc.Stop()
		<-stopped
		err = fmt.Errorf("rpc: graceful stop of %s timed out after %s", s.addr, s.cfg.ShutdownTimeout)
	}
	<-errc // Serve returns nil after (Graceful)Stop
	if err == nil {
		s.log.InfoContext(ctx, "grpc server stopped", slog.String("addr", s.addr.String()))
	}
	return err
}

// Ready is closed once the server listens; [Server.Addr] is then valid.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address (useful with port 0), or nil before the
// server listens.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.ready:
		return s.addr
	default:
		return nil
	}
}
