package web_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/piazza-social/piazza/platform/web"
)

// BenchmarkRouterStack measures the per-request overhead of the Router and
// the standard middleware around a trivial handler (tracing with a no-op
// provider, access log to a discarding handler).
func BenchmarkRouterStack(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	rt := web.NewRouter(web.RouterConfig{Middleware: web.Stack(web.StackConfig{
		TracerProvider: noop.NewTracerProvider(),
		Propagator:     propagation.TraceContext{},
	}, log)}, log)
	rt.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	r := httptest.NewRequest(http.MethodGet, "/posts/42", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		rt.ServeHTTP(w, r)
	}
}

// BenchmarkRouterOnly is the Router without middleware.
func BenchmarkRouterOnly(b *testing.B) {
	rt := web.NewRouter(web.RouterConfig{}, nil)
	rt.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	r := httptest.NewRequest(http.MethodGet, "/posts/42", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		rt.ServeHTTP(w, r)
	}
}

// BenchmarkBareMux is the baseline: a plain ServeMux.
func BenchmarkBareMux(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	r := httptest.NewRequest(http.MethodGet, "/posts/42", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		mux.ServeHTTP(w, r)
	}
}
