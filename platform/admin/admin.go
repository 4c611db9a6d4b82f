// Package admin implements the per-process admin HTTP server, which listens
// on its own port, apart from the public API, and is meant for the
// infrastructure only (Prometheus, the orchestrator's probes, operators):
//
//   - GET /metrics: the metrics handler passed to New (Prometheus/OpenMetrics).
//   - GET /healthz: liveness. 200 {"status":"ok"} for as long as the process
//     serves HTTP; it never runs checks, so a slow dependency cannot get a
//     healthy process restarted.
//   - GET /readyz: readiness. Runs every registered check concurrently, each
//     bounded by Config.CheckTimeout, and answers 200 when all pass, 503 with
//     the failing checks' names and errors otherwise, and 503 once the
//     server is draining (SetDraining), so load balancers stop routing new
//     traffic while the public server finishes in-flight requests.
//   - /debug/pprof/...: the net/http/pprof handlers, only when
//     Config.EnablePprof is set.
//
// Readiness responses include check error messages; that is acceptable
// because the admin port must not be exposed publicly.
package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultAddr            = "127.0.0.1:9090" // loopback: the admin port is never public
	DefaultCheckTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
)

// Config configures the admin server.
type Config struct {
	// Addr is the listen address. Default DefaultAddr; "127.0.0.1:0" picks
	// a free port (see Server.Addr).
	Addr string
	// EnablePprof serves net/http/pprof under /debug/pprof/. Profiling
	// endpoints are expensive and reveal internals, hence off by default.
	EnablePprof bool
	// CheckTimeout bounds each readiness check. Default DefaultCheckTimeout.
	CheckTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown in Run after its context
	// is cancelled. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// CheckFunc reports whether one dependency is ready; a nil error means ready.
// It must honour ctx, which carries the per-check timeout; a check that
// ignores it is reported as timed out anyway, but its goroutine lingers.
type CheckFunc func(ctx context.Context) error

// Server is the admin HTTP server. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	mu     sync.Mutex
	checks map[string]CheckFunc
	// lastOK remembers each check's previous outcome so that only
	// transitions are logged, not every probe.
	lastOK map[string]bool

	draining atomic.Bool
	started  atomic.Bool
	addr     atomic.Pointer[string]
	listenCh chan struct{}
}

// New returns an admin server that serves metrics at /metrics (nil metrics
// leaves /metrics unrouted). log may be nil to discard logs. Negative
// durations in cfg are replaced by the defaults. The server does not listen
// until Run is called.
func New(cfg Config, metrics http.Handler, log *slog.Logger) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		checks:   map[string]CheckFunc{},
		lastOK:   map[string]bool{},
		listenCh: make(chan struct{}),
	}

	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if cfg.EnablePprof {
		// Registered explicitly on this mux: importing net/http/pprof also
		// registers on http.DefaultServeMux, which nothing in the project
		// serves.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol) // go tool pprof posts addresses
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.handler = mux
	return s
}

// Handler returns the server's routes, for tests and for embedding the admin
// endpoints in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// AddCheck registers a readiness check under name. It may be called before
// or after Run. It panics if name is empty, fn is nil or name is already
// registered: all three are wiring bugs that would make /readyz ambiguous.
func (s *Server) AddCheck(name string, fn CheckFunc) {
	if name == "" || fn == nil {
		panic("admin: AddCheck needs a name and a function")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.checks[name]; dup {
		panic(fmt.Sprintf("admin: readiness check %q registered twice", name))
	}
	s.checks[name] = fn
}

// SetDraining makes /readyz answer 503 from now on, whatever the checks say.
// The process calls it when shutdown starts, before draining the public
// server, so that load balancers stop sending new requests. It cannot be
// undone.
func (s *Server) SetDraining() {
	if !s.draining.Swap(true) {
		s.log.Info("admin: draining, readiness now reports unavailable")
	}
}

// Addr returns the address the server listens on, or "" before Run has
// bound its listener. With Config.Addr "127.0.0.1:0" it reports the port
// actually chosen.
func (s *Server) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Listening returns a channel closed once Run has bound its listener, after
// which Addr is valid. It is never closed if Run fails to listen.
func (s *Server) Listening() <-chan struct{} { return s.listenCh }

// Run listens on Config.Addr and serves until ctx is cancelled, then shuts
// down gracefully within Config.ShutdownTimeout and returns nil. It returns
// an error if the address cannot be bound or serving fails, and may be
// called only once.
func (s *Server) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("admin: Run called twice")
	}
	if ctx.Err() != nil {
		return nil // cancelled before starting: nothing to serve or shut down
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Addr, err)
	}
	addr := lis.Addr().String()
	s.addr.Store(&addr)
	close(s.listenCh)

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		// No WriteTimeout: /debug/pprof/profile and /trace legitimately
		// stream for as long as the requested duration.
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	s.log.InfoContext(ctx, "admin: serving", slog.String("addr", addr), slog.Bool("pprof", s.cfg.EnablePprof))

	select {
	case err := <-serveErr:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}

	// ctx is already cancelled; the shutdown needs a live deadline of its own.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// In-flight requests (e.g. a pprof profile) outlived the timeout;
		// cut them off rather than keep the process alive.
		s.log.WarnContext(ctx, "admin: graceful shutdown timed out, closing connections", slog.Any("error", err))
		_ = srv.Close()
	}
	<-serveErr // http.ErrServerClosed
	s.log.InfoContext(ctx, "admin: stopped")
	return nil
}

type statusBody struct {
	Status string `json:"status"`
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

// Status values reported by /readyz.
const (
	statusOK          = "ok"
	statusFail        = "fail"
	statusUnavailable = "unavailable"
	statusDraining    = "draining"
)

// CheckResult is one check's outcome in the /readyz body.
type CheckResult struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"` // "ok" or "fail"
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// ReadyzResponse is the /readyz body. Status is "ok" (200), "unavailable"
// (503, Failing names the failed checks) or "draining" (503, checks are not
// run).
type ReadyzResponse struct {
	Status  string        `json:"status"`
	Failing []string      `json:"failing,omitempty"`
	Checks  []CheckResult `json:"checks"`
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, ReadyzResponse{Status: statusDraining, Checks: []CheckResult{}})
		return
	}
	results := s.runChecks(r.Context())
	resp := ReadyzResponse{Status: statusOK, Checks: results}
	for _, res := range results {
		if res.Status != statusOK {
			resp.Failing = append(resp.Failing, res.Name)
		}
	}
	code := http.StatusOK
	if len(resp.Failing) > 0 {
		resp.Status = statusUnavailable
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, resp)
}

// runChecks runs all registered checks concurrently and returns their
// results sorted by name. It returns within about CheckTimeout even if a
// check ignores its context.
func (s *Server) runChecks(ctx context.Context) []CheckResult {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	fns := make([]CheckFunc, 0, len(s.checks))
	for name, fn := range s.checks {
		names = append(names, name)
		fns = append(fns, fn)
	}
	s.mu.Unlock()

	results := make([]CheckResult, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() { results[i] = s.runCheck(ctx, names[i], fns[i]) })
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b CheckResult) int { return cmp.Compare(a.Name, b.Name) })
	s.logTransitions(ctx, results)
	return results
}

func (s *Server) runCheck(ctx context.Context, name string, fn CheckFunc) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	start := time.Now()

	// Buffered so that a check finishing after the timeout does not block
	// its goroutine forever.
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- fn(ctx)
	}()

	var err error
	select {
	case err = <-done:
		// A check that returns ctx's error after the deadline is reported
		// the same way as one that hangs.
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", s.cfg.CheckTimeout, err)
		}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", s.cfg.CheckTimeout)
		} else {
			err = fmt.Errorf("aborted: %w", ctx.Err())
		}
	}
	res := CheckResult{Name: name, Status: statusOK, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		res.Status = statusFail
		res.Error = err.Error()
	}
	return res
}

// logTransitions logs checks whose outcome changed since the previous probe
// (and first failures), so a failing dependency is logged once, not on
// every probe.
func (s *Server) logTransitions(ctx context.Context, results []CheckResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range results {
		ok := res.Status == statusOK
		prev, seen := s.lastOK[res.Name]
		s.lastOK[res.Name] = ok
		switch {
		case !ok && (!seen || prev):
			s.log.WarnContext(ctx, "admin: readiness check failing",
				slog.String("check", res.Name), slog.String("error", res.Error))
		case ok && seen && !prev:
			s.log.InfoContext(ctx, "admin: readiness check recovered", slog.String("check", res.Name))
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	// Probes must always see the current state, never a cached one.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body) // the client may have gone; nothing to do
}
