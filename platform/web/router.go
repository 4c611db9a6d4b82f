package web

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/piazza-social/piazza/platform/errs"
)

// RouterConfig configures a [Router].
type RouterConfig struct {
	// Middleware wraps every request, matched or not, after the route has
	// been resolved (typically [Stack]). Nil: none.
	Middleware Middleware
}

// Router is the public API's request entry point: an http.ServeMux (Go 1.22
// patterns: "GET /posts/{id}") that
//
//   - resolves the route BEFORE the middleware run, so the span is named
//     after the route, the access log has it, and [Timeout] knows whether
//     the route streams;
//   - answers unknown routes with a 404 problem (code not_found) and wrong
//     methods with a 405 problem (code method_not_allowed) plus the Allow
//     header, instead of ServeMux's plain-text bodies, both through the
//     middleware so they carry trace and request ids.
//
// Resolving first costs one extra ServeMux lookup per request (the mux
// looks the route up again to set path values); that is a few hundred
// nanoseconds against the alternative of losing the route in every
// middleware.
type Router struct {
	mux     *http.ServeMux
	handler http.Handler
	rs      *Responder
}

// NewRouter returns an empty Router. log receives the causes of 5xx
// responses written by the Router itself (none in practice).
func NewRouter(cfg RouterConfig, log *slog.Logger) *Router {
	rt := &Router{mux: http.NewServeMux(), rs: NewResponder(log)}
	rt.handler = http.HandlerFunc(rt.dispatch)
	if cfg.Middleware != nil {
		rt.handler = cfg.Middleware(rt.handler)
	}
	return rt
}

// route is what the Router registers with the mux, so that the resolved
// handler tells the Router about its route.
type route struct {
	h      http.Handler
	stream bool
}

func (rh *route) ServeHTTP(w http.ResponseWriter, r *http.Request) { rh.h.ServeHTTP(w, r) }

// Handle registers h for pattern (ServeMux syntax). It panics on an invalid
// or conflicting pattern, as ServeMux does.
func (rt *Router) Handle(pattern string, h http.Handler) {
	rt.mux.Handle(pattern, &route{h: h})
}

// HandleFunc registers f for pattern.
func (rt *Router) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	rt.Handle(pattern, http.HandlerFunc(f))
}

// HandleStream registers a long-lived (streaming, e.g. server-sent events)
// handler for pattern: [Timeout] does not apply to it.
func (rt *Router) HandleStream(pattern string, h http.Handler) {
	rt.mux.Handle(pattern, &route{h: h, stream: true})
}

// ServeHTTP resolves the route, then serves the request through the
// middleware.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{rw: responseWriter{ResponseWriter: w}}
	h, pattern := rt.mux.Handler(r)
	if pattern == "" {
		// Not found, method not allowed, or a redirect to a cleaned path
		// that matches nothing: dispatch decides.
		st.unmatched = h
	} else if rh, ok := h.(*route); ok {
		st.stream = rh.stream
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	// The mux sets Pattern again when it dispatches; setting it now on our
	// copy lets the middleware see it.
	r.Pattern = pattern
	rt.handler.ServeHTTP(&st.rw, r)
}

func (rt *Router) dispatch(w http.ResponseWriter, r *http.Request) {
	if st := stateFrom(r.Context()); st != nil && st.unmatched != nil {
		rt.serveUnmatched(w, r, st.unmatched)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// serveUnmatched asks the mux's own fallback handler what it would answer
// (it knows the allowed methods) and writes that as a problem instead.
func (rt *Router) serveUnmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	var c captureWriter
	h.ServeHTTP(&c, r)
	switch c.status {
	case http.StatusNotFound:
		rt.rs.WriteError(w, r, errs.New(errs.NotFound, "No resource exists at this path."))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", c.header.Get("Allow"))
		rt.rs.WriteError(w, r, errs.Newf(errs.MethodNotAllowed, "Method %s is not allowed here.", r.Method))
	default:
		// A redirect (path cleaning): let the mux answer for real.
		h.ServeHTTP(w, r)
	}
}

// captureWriter records what a handler would answer, discarding the body.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(p), nil
}
