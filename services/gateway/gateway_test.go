package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/piazza-social/piazza/api"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/services/gateway"
	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
)

type problem struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
}

func newGateway(t *testing.T) (*gateway.Service, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return gateway.New(gateway.Config{
		Addr:           "127.0.0.1:0",
		TracerProvider: tp,
		Propagator:     propagation.TraceContext{},
	}, logging.Discard()), rec
}

// do serves one request, holding the exchange to the OpenAPI document.
func do(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	gatewaytest.LoadContract(t).Handler(t, h).ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownRouteIsA404ProblemWithTheRequestsTrace(t *testing.T) {
	g, rec := newGateway(t)
	w := do(t, g.Handler(), http.MethodGet, "/v1/no/such/thing")

	p := decodeProblem(t, w)
	if w.Code != http.StatusNotFound || p.Status != 404 || p.Code != string(errs.NotFound) {
		t.Fatalf("got %d %+v", w.Code, p)
	}
	spans := rec.Ended()
	if len(spans) == 0 {
		t.Fatal("no server span recorded")
	}
	if got := spans[len(spans)-1].SpanContext().TraceID().String(); p.TraceID != got {
		t.Errorf("problem trace_id %q, server span trace %q", p.TraceID, got)
	}
	if len(p.SpanID) != 16 {
		t.Errorf("span_id %q", p.SpanID)
	}
}

func TestWrongMethodIsA405ProblemWithAllow(t *testing.T) {
	g, _ := newGateway(t)
	w := do(t, g.Handler(), http.MethodDelete, "/v1/openapi.json")
	p := decodeProblem(t, w)
	if w.Code != http.StatusMethodNotAllowed || p.Code != string(errs.MethodNotAllowed) {
		t.Fatalf("got %d %+v", w.Code, p)
	}
	if allow := w.Header().Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow %q", allow)
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	g, _ := newGateway(t)
	w := do(t, g.Handler(), http.MethodGet, "/v1/openapi.json")
	if w.Code != http.StatusOK || w.Body.String() != string(api.OpenAPI) {
		t.Fatalf("got %d, %d bytes", w.Code, w.Body.Len())
	}
}

// openAPIDoc is the part of the document the tests hold the server to.
type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas struct {
			Problem struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"Problem"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadDoc(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	return doc
}

func TestEveryRouteIsDocumentedAndEveryDocumentedRouteExists(t *testing.T) {
	g, _ := newGateway(t)
	var documented []string
	for path, ops := range loadDoc(t).Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	served := slices.Clone(g.Routes())
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("server and OpenAPI document disagree:\n served:     %q\n documented: %q", served, documented)
	}
}

func TestDocumentedErrorCodesAreExactlyTheServersCodes(t *testing.T) {
	var codes []string
	for _, c := range errs.Codes() {
		codes = append(codes, string(c))
	}
	documented := slices.Clone(loadDoc(t).Components.Schemas.Problem.Properties.Code.Enum)
	slices.Sort(codes)
	slices.Sort(documented)
	if !slices.Equal(codes, documented) {
		t.Errorf("Problem.code enum %q, errs codes %q", documented, codes)
	}
}
