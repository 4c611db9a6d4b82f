// Package web is Piazza's HTTP layer on plain net/http: a server with
// graceful shutdown, middleware (recovery, request ids, tracing, access
// logs, body limits, timeouts), a [Router] that answers unknown routes and
// wrong methods with problem details, RFC 9457 problem responses for every
// error ([Responder.WriteError]), and strict JSON decoding ([DecodeJSON]).
//
// A service's public API is typically:
//
//	rs := web.NewResponder(log)
//	rt := web.NewRouter(web.RouterConfig{Middleware: web.Stack(stackCfg, log)}, log)
//	rt.Handle("GET /posts/{id}", rs.Handler(getPost)) // getPost returns an error
//	rt.HandleStream("GET /events", sse)                // exempt from Timeout
//	srv := web.NewServer(web.ServerConfig{Addr: addr}, rt, log)
//	err := srv.Run(ctx)
//
// Errors are platform/errs errors; their code decides the HTTP status.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerConfig configures a [Server]. Zero fields take the defaults.
//
// There is deliberately no ReadTimeout or WriteTimeout: both are per
// connection and would cut server-sent-event streams. Handlers are bounded
// by [Timeout] instead, and slow headers by ReadHeaderTimeout.
type ServerConfig struct {
	// Addr is the TCP address to listen on; default ":8080". Port 0 picks
	// a free port (see [Server.Addr]).
	Addr string
	// ReadHeaderTimeout bounds reading the request headers; default 5s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds keep-alive connections between requests;
	// default 120s.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain after the Run context is
	// cancelled; remaining connections are then closed. Default 10s.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes bounds the request headers; default 64 KiB.
	MaxHeaderBytes int
}

func (c *ServerConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
}

// Server serves an http.Handler until its context is cancelled.
type Server struct {
	cfg      ServerConfig
	srv      *http.Server
	log      *slog.Logger
	ready    chan struct{}
	draining chan struct{}
	addr     net.Addr // set before ready is closed
	once     sync.Once
}

// NewServer returns a Server for h; it listens only when run.
func NewServer(cfg ServerConfig, h http.Handler, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		ready:    make(chan struct{}),
		draining: make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// net/http's own complaints (TLS handshakes, superfluous
		// WriteHeader) go to the structured log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.srv.RegisterOnShutdown(func() { close(s.draining) })
	return s
}

// Run listens on cfg.Addr and serves until ctx is cancelled; see [Server.Serve].
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then stops accepting, lets
// in-flight requests finish for up to ShutdownTimeout, and returns nil; if
// the drain times out it closes the remaining connections and returns an
// error. A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	served := false
	s.once.Do(func() { served = true })
	if !served {
		_ = ln.Close()
		return errors.New("web: Server already served")
	}
	s.addr = ln.Addr()
	close(s.ready)
	s.log.InfoContext(ctx, "http server listening", slog.String("addr", s.addr.String()))

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: serve on %s: %w", s.addr, err)
	case <-ctx.Done():
	}

	s.log.InfoContext(ctx, "http server draining", slog.String("timeout", s.cfg.ShutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed, at once after Shutdown began
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("web: graceful shutdown of %s: %w", s.addr, err)
	}
	s.log.InfoContext(ctx, "http server stopped", slog.String("addr", s.addr.String()))
	return nil
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

// Draining is closed when graceful shutdown begins. Long-lived handlers
// (server-sent events) should end their stream when it closes: shutdown
// waits for every in-flight request, and would otherwise wait for them
// until ShutdownTimeout.
func (s *Server) Draining() <-chan struct{} { return s.draining }
