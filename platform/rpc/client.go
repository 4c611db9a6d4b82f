package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/piazza-social/piazza/platform/errs"
)

// ClientConfig configures [Dial]. Zero fields take the defaults.
type ClientConfig struct {
	// Target is the server, in gRPC target syntax ("host:port",
	// "dns:///host:port", "passthrough:///..."). Required.
	Target string
	// DefaultTimeout is the deadline given to calls (unary and streaming)
	// whose context has none; default 5s. Long-lived streams opt out with
	// [WithoutDefaultDeadline].
	DefaultTimeout time.Duration
	// TracerProvider, MeterProvider and Propagator feed the otelgrpc stats
	// handler; nil means the otel globals. The propagator must inject the
	// trace context (W3C) for the server's spans to join the caller's trace.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// KeepaliveTime is how long a connection may be idle before the client
	// pings it (it must not be below the server's KeepaliveMinTime, 10s by
	// default); KeepaliveTimeout how long it waits for the answer.
	// Defaults 30s and 10s.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// UnaryInterceptors and StreamInterceptors run after the platform's
	// (default deadline, error mapping), closest to the wire.
	UnaryInterceptors  []grpc.UnaryClientInterceptor
	StreamInterceptors []grpc.StreamClientInterceptor
	// Options are appended to the dial options (tests: a custom dialer).
	Options []grpc.DialOption
}

// Dial returns a client connection to cfg.Target. It does no I/O: the
// connection is made on first use (grpc.NewClient). Calls on it carry the
// caller's trace context, get DefaultTimeout when their context has no
// deadline, and return errors as *errs.Error with the code the server sent.
//
// Transport security is plaintext: services talk over loopback (embedded
// mode) or a private network; TLS/mTLS between services is out of scope
// for now and would replace the insecure credentials here.
func Dial(cfg ClientConfig, log *slog.Logger) (*grpc.ClientConn, error) {
	if cfg.Target == "" {
		return nil, errors.New("rpc: ClientConfig.Target is required")
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 5 * time.Second
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	if cfg.KeepaliveTime <= 0 {
		cfg.KeepaliveTime = 30 * time.Second
	}
	if cfg.KeepaliveTimeout <= 0 {
		cfg.KeepaliveTimeout = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unary := append([]grpc.UnaryClientInterceptor{unaryClient(cfg.DefaultTimeout, log)}, cfg.UnaryInterceptors...)
	stream := append([]grpc.StreamClientInterceptor{streamClient(cfg.DefaultTimeout)}, cfg.StreamInterceptors...)
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(cfg.TracerProvider),
			otelgrpc.WithMeterProvider(cfg.MeterProvider),
			otelgrpc.WithPropagators(cfg.Propagator),
		)),
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                cfg.KeepaliveTime,
			Timeout:             cfg.KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
	}, cfg.Options...)
	conn, err := grpc.NewClient(cfg.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("rpc: client for %s: %w", cfg.Target, err)
	}
	return conn, nil
}

type noDefaultDeadlineKey struct{}

// WithoutDefaultDeadline marks ctx so that calls made with it get no
// default deadline: for long-lived streams, which end when ctx is
// cancelled.
func WithoutDefaultDeadline(ctx context.Context) context.Context {
	return context.WithValue(ctx, noDefaultDeadlineKey{}, true)
}

// withDefaultDeadline gives ctx a deadline d away unless it has one or opted
// out; cancel is never nil.
func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || ctx.Value(noDefaultDeadlineKey{}) != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

func unaryClient(timeout time.Duration, log *slog.Logger) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, cancel := withDefaultDeadline(ctx, timeout)
		defer cancel()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			return nil
		}
		e := errs.From(err)
		if log.Enabled(ctx, slog.LevelDebug) {
			log.LogAttrs(ctx, slog.LevelDebug, "grpc call failed",
				slog.String("method", method), slog.String("code", string(e.Code)), slog.String("error", err.Error()))
		}
		return e
	}
}

func streamClient(timeout time.Duration) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, cancel := withDefaultDeadline(ctx, timeout)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			cancel()
			return nil, errs.From(err)
		}
		return &clientStream{ClientStream: cs, cancel: cancel}, nil
	}
}

// clientStream maps a stream's errors to *errs.Error and releases its
// default deadline once the stream has ended.
type clientStream struct {
	grpc.ClientStream
	cancel context.CancelFunc
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		return nil
	}
	// Any RecvMsg error ends the stream.
	s.cancel()
	if err == io.EOF { // returned unwrapped by contract
		return err
	}
	return errs.From(err)
}

func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil || err == io.EOF { // io.EOF: the real status comes from RecvMsg
		return err
	}
	return errs.From(err)
}

func (s *clientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	if err != nil {
		return md, errs.From(err)
	}
	return md, nil
}

func (s *clientStream) CloseSend() error {
	if err := s.ClientStream.CloseSend(); err != nil {
		return errs.From(err)
	}
	return nil
}
