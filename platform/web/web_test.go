package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/web"
)

// syncBuffer is a log sink safe for server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// records returns the JSON log records with the given message.
func (b *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// env is a Router with the standard stack, tracing into a span recorder.
type env struct {
	rt    *web.Router
	rs    *web.Responder
	logs  *syncBuffer
	spans *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
}

func newEnv(t *testing.T, cfg web.StackConfig) *env {
	t.Helper()
	log, logs := newLogger()
	e := &env{logs: logs, spans: tracetest.NewSpanRecorder(), rs: web.NewResponder(log)}
	e.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	cfg.TracerProvider = e.tp
	cfg.Propagator = propagation.TraceContext{}
	e.rt = web.NewRouter(web.RouterConfig{Middleware: web.Stack(cfg, log)}, log)
	return e
}

func (e *env) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.rt.ServeHTTP(w, r)
	return w
}

// serverSpan returns the one ended server span.
func (e *env) serverSpan(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d server spans ended, want 1", len(found))
	}
	return found[0]
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) web.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q; body %s", ct, web.ProblemContentType, w.Body)
	}
	var p web.Problem
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != w.Code {
		t.Errorf("problem status %d != response status %d", p.Status, w.Code)
	}
	if p.Type != web.ProblemTypePrefix+string(p.Code) || p.Title == "" {
		t.Errorf("problem type/title = %q/%q", p.Type, p.Title)
	}
	return p
}

func TestUnknownRouteIsA404ProblemWithTraceID(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	e.rt.HandleFunc("GET /posts/{id}", func(http.ResponseWriter, *http.Request) {})
	w := e.do(httptest.NewRequest(http.MethodGet, "/nope", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", w.Code)
	}
	p := decodeProblem(t, w)
	span := e.serverSpan(t)
	if p.Code != errs.NotFound || p.TraceID != span.SpanContext().TraceID().String() || p.SpanID != span.SpanContext().SpanID().String() {
		t.Errorf("problem %+v, want code not_found and the server span's ids %v", p, span.SpanContext())
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get(web.RequestIDHeader) {
		t.Errorf("problem request_id %q, header %q", p.RequestID, w.Header().Get(web.RequestIDHeader))
	}
	if p.Instance != "/nope" {
		t.Errorf("instance = %q", p.Instance)
	}
	if span.Name() != "GET" {
		t.Errorf("span name = %q, want just the method for an unmatched route", span.Name())
	}
}

func TestWrongMethodIsA405ProblemWithAllow(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	e.rt.HandleFunc("GET /posts/{id}", func(http.ResponseWriter, *http.Request) {})
	e.rt.HandleFunc("DELETE /posts/{id}", func(http.ResponseWriter, *http.Request) {})
	w := e.do(httptest.NewRequest(http.MethodPost, "/posts/1", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", w.Code)
	}
	p := decodeProblem(t, w)
	if p.Code != errs.MethodNotAllowed || p.TraceID == "" {
		t.Errorf("problem = %+v", p)
	}
	allow := w.Header().Get("Allow")
	for _, m := range []string{"GET", "HEAD", "DELETE"} {
		if !strings.Contains(allow, m) {
			t.Errorf("Allow = %q, missing %s", allow, m)
		}
	}
}

func TestMatchedRouteNamesSpanAndAccessLogAndKeepsPathValues(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	var gotID string
	e.rt.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, r *http.Request) {
		gotID = r.PathValue("id")
		e.rs.WriteJSON(w, r, http.StatusOK, map[string]string{"id": gotID})
	})
	w := e.do(httptest.NewRequest(http.MethodGet, "/posts/42", nil))
	if w.Code != http.StatusOK || gotID != "42" {
		t.Fatalf("status %d, path value %q", w.Code, gotID)
	}
	if name := e.serverSpan(t).Name(); name != "GET /posts/{id}" {
		t.Errorf("span name = %q, want %q", name, "GET /posts/{id}")
	}
	recs := e.logs.records(t, "http request")
	if len(recs) != 1 {
		t.Fatalf("%d access log lines, want 1", len(recs))
	}
	rec := recs[0]
	if rec["level"] != "INFO" || rec["method"] != "GET" || rec["route"] != "/posts/{id}" || rec["status"] != float64(200) ||
		rec["bytes"] != float64(w.Body.Len()) || rec["request_id"] != w.Header().Get(web.RequestIDHeader) {
		t.Errorf("access log = %v", rec)
	}
	if _, ok := rec["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms missing: %v", rec)
	}
}

func TestUncleanPathIsRedirectedAsTheMuxWould(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	e.rt.HandleFunc("GET /a/b", func(http.ResponseWriter, *http.Request) {})
	w := e.do(httptest.NewRequest(http.MethodGet, "/a//b", nil))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/a/b" {
		t.Errorf("status %d Location %q, want 307 to /a/b", w.Code, w.Header().Get("Location"))
	}
}

func TestIncomingTraceContextIsContinued(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := httptest.NewRequest(http.MethodGet, "/missing", nil)
	r.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	p := decodeProblem(t, e.do(r))
	if p.TraceID != traceID || e.serverSpan(t).SpanContext().TraceID().String() != traceID {
		t.Errorf("problem trace_id %q, span trace %v, want %s", p.TraceID, e.serverSpan(t).SpanContext().TraceID(), traceID)
	}
}

func TestRequestID(t *testing.T) {
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name, incoming string
		keep           bool
	}{
		{"sane id is kept", "abc-123_X.y:z", true},
		{"missing id is generated", "", false},
		{"id with spaces is replaced", "abc 123", false},
		{"id with a newline escape is replaced", "a\\nb", false},
		{"overlong id is replaced", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inCtx string
			h := web.RequestID()(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				inCtx = web.RequestIDFrom(r.Context())
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.incoming != "" {
				r.Header.Set(web.RequestIDHeader, tt.incoming)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Get(web.RequestIDHeader)
			if got != inCtx {
				t.Errorf("header %q != context %q", got, inCtx)
			}
			if tt.keep && got != tt.incoming {
				t.Errorf("id = %q, want the incoming %q", got, tt.incoming)
			}
			if !tt.keep && !hexID.MatchString(got) {
				t.Errorf("id = %q, want a generated 32-hex id", got)
			}
		})
	}
}

func TestPanicBeforeWritingIsA500ProblemAndLoggedWithStack(t *testing.T) {
	e := newEnv(t, web.StackConfig{})
	e.rt.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("secret hunter2") })
	w := e.do(httptest.NewRequest(http.MethodGet, "/boom", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", w.Code)
	}
	body := w.Body.String()
	p := decodeProblem(t, w)
	if p.Code != errs.Internal || p.TraceID == "" || strings.Contains(body, "hunter2") || strings.Contains(body, "panic") {
		t.Errorf("problem = %s, want a generic internal problem with a trace id", body)
	}
	recs := e.logs.records(t, "panic serving http request")
	if len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0]["stack"]), "web_test.TestPanicBeforeWriting") ||
		recs[0]["panic"] != "secret hunter2" || recs[0]["route"] != "/boom" {
		t.Errorf("panic log = %v, want one with panic value, route and stack", recs)
	}
	if acc := e.logs.records(t, "http request"); len(acc) != 1 || acc[0]["status"] != float64(500) {
		t.Errorf("access log = %v, want status 500", acc)
	}
}

func TestPanicAfterWritingAbortsTheResponse(t *testing.T) {
	log, _ := newLogger()
	h := web.Recover(log)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("partial"))
		panic("late")
	}))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler so net/http drops the connection", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}

func TestTimeoutBoundsHandlersButNotStreams(t *testing.T) {
	e := newEnv(t, web.StackConfig{Timeout: 150 * time.Millisecond})
	var plainDeadline, streamDeadline bool
	var left time.Duration
	e.rt.HandleFunc("GET /plain", func(_ http.ResponseWriter, r *http.Request) {
		var dl time.Time
		dl, plainDeadline = r.Context().Deadline()
		left = time.Until(dl)
	})
	e.rt.HandleStream("GET /events", http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, streamDeadline = r.Context().Deadline()
	}))
	e.rt.Handle("GET /slow", e.rs.Handler(func(_ http.ResponseWriter, r *http.Request) error {
		<-r.Context().Done()
		return r.Context().Err()
	}))

	e.do(httptest.NewRequest(http.MethodGet, "/plain", nil))
	if !plainDeadline || left <= 0 || left > 150*time.Millisecond {
		t.Errorf("plain route: deadline %v with %v left, want one within 150ms", plainDeadline, left)
	}
	e.do(httptest.NewRequest(http.MethodGet, "/events", nil))
	if streamDeadline {
		t.Error("streaming route got a deadline")
	}
	w := e.do(httptest.NewRequest(http.MethodGet, "/slow", nil))
	if w.Code != http.StatusGatewayTimeout || decodeProblem(t, w).Code != errs.DeadlineExceeded {
		t.Errorf("slow route: status %d, want 504 deadline_exceeded", w.Code)
	}
}

func TestBodyLimitRejectsDeclaredOversizeBodiesUpFront(t *testing.T) {
	called := false
	h := web.BodyLimit(10)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("01234567890")))
	if called || w.Code != http.StatusRequestEntityTooLarge || decodeProblem(t, w).Code != errs.PayloadTooLarge {
		t.Errorf("called %v, status %d, want 413 payload_too_large without calling the handler", called, w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("0123456789")))
	if !called || w.Code != http.StatusOK {
		t.Errorf("body at the limit: called %v, status %d", called, w.Code)
	}
}

func TestHandlerReadingPastBodyLimitGets413(t *testing.T) {
	e := newEnv(t, web.StackConfig{BodyLimit: 8})
	e.rt.Handle("POST /upload", e.rs.Handler(func(_ http.ResponseWriter, r *http.Request) error {
		_, err := io.ReadAll(r.Body)
		return err
	}))
	r := httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader("0123456789"))
	r.ContentLength = -1 // chunked: only reading finds out
	w := e.do(r)
	if w.Code != http.StatusRequestEntityTooLarge || decodeProblem(t, w).Code != errs.PayloadTooLarge {
		t.Errorf("status %d, want 413 payload_too_large", w.Code)
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       errs.Code
		detail     string
		headers    map[string]string
		logLevel   string // "" = no "request failed" log
		fieldCount int
	}{
		{"validation", errs.Validation("bad input", errs.Field("/title", "required")), 400, errs.ValidationFailed, "bad input", nil, "", 1},
		{"not found", fmt.Errorf("loading: %w", errs.New(errs.NotFound, "no such post")), 404, errs.NotFound, "no such post", nil, "", 0},
		{"token expired", errs.New(errs.TokenExpired, "expired"), 401, errs.TokenExpired, "expired",
			map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`}, "", 0},
		{"token missing", errs.New(errs.TokenMissing, "log in"), 401, errs.TokenMissing, "log in",
			map[string]string{"WWW-Authenticate": "Bearer"}, "", 0},
		{"rate limited", errs.New(errs.RateLimited, "slow down").WithRetryAfter(1500 * time.Millisecond), 429, errs.RateLimited, "slow down",
			map[string]string{"Retry-After": "2"}, "", 0},
		{"plain error", errors.New("pq: password=hunter2"), 500, errs.Internal, "", nil, "ERROR", 0},
		{"internal with message", errs.Wrap(errors.New("hunter2"), errs.Internal, "hunter2 in message"), 500, errs.Internal, "", nil, "ERROR", 0},
		{"unavailable", errs.Wrap(errors.New("redis down hunter2"), errs.Unavailable, "x"), 503, errs.Unavailable, "", nil, "WARN", 0},
		{"context deadline", context.DeadlineExceeded, 504, errs.DeadlineExceeded, "", nil, "WARN", 0},
		{"nil error is a bug", nil, 500, errs.Internal, "", nil, "ERROR", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLogger()
			w := httptest.NewRecorder()
			web.NewResponder(log).WriteError(w, httptest.NewRequest(http.MethodGet, "/x", nil), tt.err)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d", w.Code, tt.status)
			}
			raw := w.Body.String()
			p := decodeProblem(t, w)
			if p.Code != tt.code || len(p.Errors) != tt.fieldCount {
				t.Errorf("problem = %+v", p)
			}
			if tt.status >= 500 {
				if strings.Contains(raw, "hunter2") || p.Detail == "" {
					t.Errorf("5xx body leaks or lacks a generic detail: %s", raw)
				}
			} else if p.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", p.Detail, tt.detail)
			}
			for k, v := range tt.headers {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			recs := logs.records(t, "request failed")
			switch {
			case tt.logLevel == "" && len(recs) != 0:
				t.Errorf("4xx logged: %v", recs)
			case tt.logLevel != "" && (len(recs) != 1 || recs[0]["level"] != tt.logLevel || recs[0]["code"] != string(tt.code)):
				t.Errorf("log = %v, want one %s record with code %s", recs, tt.logLevel, tt.code)
			}
			if tt.name == "plain error" && !strings.Contains(fmt.Sprint(recs[0]["error"]), "hunter2") {
				t.Errorf("the internal cause is not in the log: %v", recs[0])
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	rs := web.NewResponder(nil)
	w := httptest.NewRecorder()
	rs.WriteJSON(w, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusCreated, map[string]int{"n": 1})
	if w.Code != http.StatusCreated || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != `{"n":1}` {
		t.Errorf("got %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	w = httptest.NewRecorder()
	rs.WriteJSON(w, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusOK, make(chan int))
	if w.Code != http.StatusInternalServerError || decodeProblem(t, w).Code != errs.Internal {
		t.Errorf("unencodable value: status %d, want a 500 problem", w.Code)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) web.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	web.Chain(mw("a"), mw("b"), mw("c"))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		order = append(order, "h")
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got := strings.Join(order, ""); got != "abch" {
		t.Errorf("order = %s, want abch", got)
	}
}

func startServer(t *testing.T, cfg web.ServerConfig, h http.Handler) (*web.Server, context.CancelFunc, chan error) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	log, _ := newLogger()
	srv := web.NewServer(cfg, h, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(cancel)
	return srv, cancel, done
}

func TestServerDrainsInFlightRequestsThenReturnsNil(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv, cancel, done := startServer(t, web.ServerConfig{}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = w.Write([]byte("done"))
	}))
	if _, ok := srv.Addr().(*net.TCPAddr); !ok || srv.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("Addr = %v, want the bound port", srv.Addr())
	}
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + srv.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel()
	select {
	case <-srv.Draining():
	case <-time.After(5 * time.Second):
		t.Fatal("Draining not closed after cancel")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestServerReturnsErrorWhenDrainTimesOut(t *testing.T) {
	var entered atomic.Bool
	srv, cancel, done := startServer(t, web.ServerConfig{ShutdownTimeout: 100 * time.Millisecond},
		http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			entered.Store(true)
			<-r.Context().Done() // ends only when the connection is closed
		}))
	go func() {
		resp, err := http.Get("http://" + srv.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !entered.Load() {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the handler")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run = nil, want an error after the forced close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the shutdown timeout")
	}
}

func TestServerRunFailsOnABusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := web.NewServer(web.ServerConfig{Addr: ln.Addr().String()}, http.NotFoundHandler(), nil)
	if err := srv.Run(context.Background()); err == nil {
		t.Error("Run on a busy address succeeded")
	}
}
