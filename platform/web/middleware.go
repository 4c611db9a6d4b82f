package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/errs"
)

// Middleware wraps a handler. Middleware compose with [Chain].
type Middleware func(http.Handler) http.Handler

// Chain composes middleware: the first is the outermost, so
// Chain(a, b)(h) serves a request through a, then b, then h.
func Chain(mws ...Middleware) Middleware {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		return h
	}
}

// StackConfig configures [Stack].
type StackConfig struct {
	// TracerProvider, MeterProvider and Propagator feed [Tracing]; nil
	// means the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Timeout bounds non-streaming handlers (see [Timeout]); default 10s.
	Timeout time.Duration
	// BodyLimit bounds request bodies (see [BodyLimit]); default 1 MiB.
	BodyLimit int64
}

// Stack returns the platform's standard middleware in the order that makes
// each one see what it needs: Tracing (so everything below has a span),
// RequestID, AccessLog (sees the final status, including a recovered
// panic's 500), Recover, Timeout, BodyLimit. Pass it to a [Router] so that
// the route is known before it runs.
func Stack(cfg StackConfig, log *slog.Logger) Middleware {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = MaxJSONBody
	}
	return Chain(
		Tracing(TracingConfig{TracerProvider: cfg.TracerProvider, MeterProvider: cfg.MeterProvider, Propagator: cfg.Propagator}),
		RequestID(),
		AccessLog(log),
		Recover(log),
		Timeout(cfg.Timeout),
		BodyLimit(cfg.BodyLimit),
	)
}

// requestState is the per-request record shared by the Router and the
// middleware: one allocation carries the response recorder, the request id
// and the route's properties, so that the hot path does not pay for several
// context values and writer wrappers.
type requestState struct {
	rw        responseWriter
	id        string
	stream    bool         // the route opted out of Timeout
	unmatched http.Handler // the mux's own handler when no route matched
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// withState returns the request's state, attaching a new one (which wraps w)
// when no outer layer did; the middleware thus also work without a Router.
func withState(w http.ResponseWriter, r *http.Request) (*requestState, http.ResponseWriter, *http.Request) {
	if st := stateFrom(r.Context()); st != nil {
		return st, w, r
	}
	st := &requestState{rw: responseWriter{ResponseWriter: w}}
	return st, &st.rw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
}

// responseWriter records the status and the body size. It keeps Flush
// (server-sent events need it) and exposes Unwrap for
// http.ResponseController (deadlines, hijacking).
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx responses are informational; the final status comes later.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wroteHeader reports whether the response has started.
func (w *responseWriter) wroteHeader() bool { return w.status != 0 }

// TracingConfig configures [Tracing].
type TracingConfig struct {
	// TracerProvider defaults to otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator, which extracts the caller's W3C trace context, defaults
	// to otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Tracing starts a server span per request (otelhttp) after extracting the
// caller's trace context from the headers, and records the standard HTTP
// server metrics. The span is named "METHOD /route/{pattern}" when the
// route is known before the span starts, which is the case under a
// [Router]; otherwise just "METHOD".
func Tracing(cfg TracingConfig) Middleware {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return otelhttp.NewMiddleware("http.server",
		otelhttp.WithTracerProvider(cfg.TracerProvider),
		otelhttp.WithMeterProvider(cfg.MeterProvider),
		otelhttp.WithPropagators(cfg.Propagator),
	)
}

// RequestIDHeader carries the request id in both directions. It is written
// in canonical form so that header map accesses need no canonicalisation
// (header names are case-insensitive on the wire: X-Request-ID matches).
const RequestIDHeader = "X-Request-Id"

// RequestID gives every request an id: the caller's X-Request-ID when it is
// sane (1–128 characters of [A-Za-z0-9._:-]), a fresh random one
// otherwise. The id is echoed in the response header, stored for
// [RequestIDFrom], and logged by [AccessLog] and in problem responses.
func RequestID() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := withState(w, r)
			var id string
			if v := r.Header[RequestIDHeader]; len(v) > 0 && validRequestID(v[0]) {
				id = v[0]
			} else {
				id = newRequestID()
			}
			st.id = id
			w.Header()[RequestIDHeader] = []string{id}
			next.ServeHTTP(w, r)
		})
	}
}

// RequestIDFrom returns the request id that [RequestID] assigned to the
// request carrying ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// AccessLog writes one JSON line per request at Info: method, route (the
// matched pattern's path, "" when no route matched), status, bytes,
// duration_ms and request_id. The trace id is added from the context by
// the project's slog handler. The line is written even when a panic
// aborts the request.
func AccessLog(log *slog.Logger) Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := withState(w, r)
			start := time.Now()
			defer func() {
				ctx := r.Context()
				if !log.Enabled(ctx, slog.LevelInfo) {
					return
				}
				status := st.rw.status
				if status == 0 {
					// The handler wrote nothing: net/http sends 200.
					status = http.StatusOK
				}
				log.LogAttrs(ctx, slog.LevelInfo, "http request",
					slog.String("method", r.Method),
					slog.String("route", routePath(r.Pattern)),
					slog.Int("status", status),
					slog.Int64("bytes", st.rw.bytes),
					slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
					slog.String("request_id", st.id),
				)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// routePath strips the method (and host) from a ServeMux pattern:
// "GET /posts/{id}" → "/posts/{id}".
func routePath(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return pattern
}

// Recover turns a panic into a 500 problem (if the response has not started;
// otherwise it aborts the connection so the client sees a broken response,
// not a truncated one that looks complete) and logs it with its stack.
// http.ErrAbortHandler passes through untouched.
func Recover(log *slog.Logger) Middleware {
	rs := NewResponder(log)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := withState(w, r)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				rs.log.LogAttrs(r.Context(), slog.LevelError, "panic serving http request",
					slog.String("method", r.Method),
					slog.String("route", routePath(r.Pattern)),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())),
				)
				if st.rw.wroteHeader() {
					panic(http.ErrAbortHandler)
				}
				rs.write(w, r, errs.Wrap(fmt.Errorf("panic: %v", v), errs.Internal, "internal error"), false)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Timeout gives non-streaming handlers a context deadline of d. It does not
// write a response itself (unlike http.TimeoutHandler, it neither buffers
// the response nor races the handler): a handler that sees its context
// expire returns the error, which [Responder.WriteError] turns into a 504.
// Routes registered with [Router.HandleStream] are exempt, so long-lived
// streams (SSE) are bounded by the client and server shutdown only.
func Timeout(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if st := stateFrom(r.Context()); st != nil && st.stream {
				next.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// BodyLimit caps request bodies at n bytes: a declared Content-Length above
// n is answered at once with a 413 problem (code payload_too_large), and a
// body that turns out longer fails its Read with *http.MaxBytesError, which
// [DecodeJSON] and [Responder.WriteError] also turn into that 413.
//
// payload_too_large rather than validation_failed: the HTTP status differs
// (413, not 400), the one code→status table needs a code per status, and a
// client fixes it by sending less, not by correcting a field.
func BodyLimit(n int64) Middleware {
	var rs Responder
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				rs.WriteError(w, r, tooLarge(n))
				return
			}
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			r2 := *r // as http.MaxBytesHandler: never modify the caller's request
			r2.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, &r2)
		})
	}
}

func tooLarge(n int64) *errs.Error {
	return errs.Newf(errs.PayloadTooLarge, "The request body exceeds the limit of %d bytes.", n)
}
