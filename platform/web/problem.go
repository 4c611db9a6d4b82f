package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/errs"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// ProblemTypePrefix prefixes the code in a problem's "type": the type is a
// stable identifier of the kind of problem (one per code), not a URL to
// fetch.
const ProblemTypePrefix = "urn:piazza:problem:"

// Problem is the RFC 9457 problem-details body of every error response.
// Besides the standard members it carries the machine-readable code, the
// ids of the trace and of the server span (to find the request in the
// traces and logs) and, for validation errors, the offending fields.
type Problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail,omitempty"`
	Instance  string                `json:"instance,omitempty"`
	Code      errs.Code             `json:"code"`
	TraceID   string                `json:"trace_id,omitempty"`
	SpanID    string                `json:"span_id,omitempty"`
	RequestID string                `json:"request_id,omitempty"`
	Errors    []errs.FieldViolation `json:"errors,omitempty"`
}

// internalDetail replaces the message of every 5xx: whatever went wrong
// inside is for the logs, found through trace_id.
const internalDetail = "The server could not complete the request. Quote the trace_id when reporting this."

// HandlerFunc is an HTTP handler that returns its error instead of writing
// it; [Responder.Handler] adapts it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Responder writes JSON and problem responses. Its logger records the
// internal cause of 5xx responses; the zero Responder logs nothing.
type Responder struct {
	log *slog.Logger
}

// NewResponder returns a Responder that logs 5xx causes to log (nil: none).
func NewResponder(log *slog.Logger) *Responder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Responder{log: log}
}

// Handler adapts h: a non-nil error it returns is written with
// [Responder.WriteError] (unless h already started the response, in which
// case it is only logged).
func (rs *Responder) Handler(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		if st := stateFrom(r.Context()); st != nil && st.rw.wroteHeader() {
			rs.logger().LogAttrs(r.Context(), slog.LevelWarn, "handler failed after the response started",
				slog.String("route", routePath(r.Pattern)), slog.String("error", err.Error()))
			return
		}
		rs.WriteError(w, r, err)
	})
}

// WriteJSON writes v as JSON with the given status. A v that cannot be
// encoded is a bug: it becomes a 500 problem.
func (rs *Responder) WriteJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rs.WriteError(w, r, errs.Wrap(err, errs.Internal, "internal error"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b) // a failed write means the client left; nothing to do
}

// WriteError writes err as an application/problem+json response. The
// status and code come from [errs.From] (a body over the limit is
// payload_too_large). 4xx responses carry the error's message and field
// violations; 5xx responses carry a generic detail, and their internal
// cause is logged (with the trace id, by the logger's handler). The
// problem includes the trace and span ids of the current span and the
// request id.
func (rs *Responder) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		err = errs.Wrap(errors.New("web: WriteError called with a nil error"), errs.Internal, "internal error")
	}
	rs.write(w, r, err, true)
}

func (rs *Responder) logger() *slog.Logger {
	if rs == nil || rs.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rs.log
}

func (rs *Responder) write(w http.ResponseWriter, r *http.Request, err error, logCause bool) {
	e := errs.From(err)
	if e.Code == errs.Internal {
		if mb, ok := errors.AsType[*http.MaxBytesError](err); ok {
			e = tooLarge(mb.Limit)
		}
	}
	status := e.Code.HTTPStatus()
	ctx := r.Context()
	p := Problem{
		Type:     ProblemTypePrefix + string(e.Code),
		Title:    e.Code.Title(),
		Status:   status,
		Detail:   e.Message,
		Instance: r.URL.Path,
		Code:     e.Code,
		Errors:   e.Fields,
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		p.TraceID = sc.TraceID().String()
		p.SpanID = sc.SpanID().String()
	}
	if st := stateFrom(ctx); st != nil {
		p.RequestID = st.id
	}
	if status >= 500 {
		p.Detail = internalDetail
		p.Errors = nil
		if logCause {
			level := slog.LevelWarn
			if e.Code == errs.Internal {
				level = slog.LevelError
			}
			rs.logger().LogAttrs(ctx, level, "request failed",
				slog.String("method", r.Method),
				slog.String("route", routePath(r.Pattern)),
				slog.String("code", string(e.Code)),
				slog.Int("status", status),
				slog.String("error", err.Error()),
			)
		}
	}

	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		// Retry-After takes whole seconds; round up so a client never
		// retries early.
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if status == http.StatusUnauthorized {
		// RFC 9110 requires a challenge on 401; RFC 6750 names the bearer
		// token errors.
		switch e.Code {
		case errs.TokenExpired, errs.TokenInvalid:
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		default:
			h.Set("WWW-Authenticate", "Bearer")
		}
	}
	b, mErr := json.Marshal(p)
	if mErr != nil {
		// Problem holds only strings and ints; this cannot happen.
		b = []byte(`{"type":"urn:piazza:problem:internal","title":"Internal error","status":500,"code":"internal"}`)
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
