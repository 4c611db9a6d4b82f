package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	rpctestv1 "github.com/piazza-social/piazza/gen/piazza/rpctest/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/platform/web"
)

// failService fails as asked: the gRPC end of the cross-hop test.
type failService struct {
	rpctestv1.UnimplementedTestServiceServer
}

func (failService) Fail(_ context.Context, req *rpctestv1.FailRequest) (*rpctestv1.FailResponse, error) {
	if req.GetPanic() {
		panic("hunter2: nil map in the post store")
	}
	if c := errs.Code(req.GetCode()); c == errs.ValidationFailed {
		return nil, errs.Validation(req.GetMessage(), errs.Field("/title", "is required"))
	}
	return nil, errs.Wrap(errors.New("hunter2 internal cause"), errs.Code(req.GetCode()), req.GetMessage())
}

// crossHop is: HTTP client → web.Server → Router + Stack → handler →
// rpc client → rpc.Server on loopback → failService, all tracing into one
// span recorder through explicit config (not the otel globals).
type crossHop struct {
	base  string
	spans *tracetest.SpanRecorder
	logs  *syncBuffer
}

func startCrossHop(t *testing.T) *crossHop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	prop := propagation.TraceContext{}
	log, logs := newLogger()

	grpcSrv := rpc.NewServer(rpc.ServerConfig{TracerProvider: tp, Propagator: prop}, log)
	rpctestv1.RegisterTestServiceServer(grpcSrv, failService{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- grpcSrv.Serve(ctx, ln) }()

	conn, err := rpc.Dial(rpc.ClientConfig{Target: ln.Addr().String(), TracerProvider: tp, Propagator: prop}, log)
	if err != nil {
		t.Fatal(err)
	}
	client := rpctestv1.NewTestServiceClient(conn)

	rs := web.NewResponder(log)
	rt := web.NewRouter(web.RouterConfig{
		Middleware: web.Stack(web.StackConfig{TracerProvider: tp, Propagator: prop}, log),
	}, log)
	rt.Handle("GET /fail/{code}", rs.Handler(func(w http.ResponseWriter, r *http.Request) error {
		req := &rpctestv1.FailRequest{Code: r.PathValue("code"), Message: "post 42 not visible"}
		req.Panic = req.GetCode() == "crash"
		if _, err := client.Fail(r.Context(), req); err != nil {
			return err
		}
		rs.WriteJSON(w, r, http.StatusOK, struct{}{})
		return nil
	}))
	httpSrv := web.NewServer(web.ServerConfig{Addr: "127.0.0.1:0"}, rt, log)
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Run(ctx) }()
	<-httpSrv.Ready()

	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		for _, done := range []chan error{httpDone, grpcDone} {
			if err := <-done; err != nil {
				t.Errorf("server stopped with %v", err)
			}
		}
	})
	return &crossHop{base: "http://" + httpSrv.Addr().String(), spans: spans, logs: logs}
}

// get performs a request and decodes the problem it must answer with.
func (c *crossHop) get(t *testing.T, method, path string) (*http.Response, web.Problem, string) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, body)
	}
	var p web.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	return resp, p, string(body)
}

// spanOf waits for the ended span of kind whose name satisfies match: the
// server side ends its spans after the response is on its way.
func (c *crossHop) spanOf(t *testing.T, kind trace.SpanKind, match func(string) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range c.spans.Ended() {
			if s.SpanKind() == kind && match(s.Name()) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended %v span matched", kind)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestErrorCrossesHTTPAndGRPCWithItsCodeAndOneTrace(t *testing.T) {
	tests := []struct {
		code       string
		wantStatus int
		wantCode   errs.Code
		wantDetail string // "" = must be the generic 5xx detail
	}{
		{"not_found", http.StatusNotFound, errs.NotFound, "post 42 not visible"},
		{"token_expired", http.StatusUnauthorized, errs.TokenExpired, "post 42 not visible"},
		{"token_invalid", http.StatusUnauthorized, errs.TokenInvalid, "post 42 not visible"},
		{"validation_failed", http.StatusBadRequest, errs.ValidationFailed, "post 42 not visible"},
		{"unavailable", http.StatusServiceUnavailable, errs.Unavailable, ""},
		{"crash", http.StatusInternalServerError, errs.Internal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			c := startCrossHop(t)
			resp, p, body := c.get(t, http.MethodGet, "/fail/"+tt.code)

			if resp.StatusCode != tt.wantStatus || p.Status != tt.wantStatus || p.Code != tt.wantCode {
				t.Fatalf("got %d code %q, want %d %q: %s", resp.StatusCode, p.Code, tt.wantStatus, tt.wantCode, body)
			}
			if tt.wantDetail != "" && p.Detail != tt.wantDetail {
				t.Errorf("detail = %q, want the gRPC handler's message %q", p.Detail, tt.wantDetail)
			}
			if tt.wantDetail == "" && (p.Detail == "" || strings.Contains(p.Detail, "post 42")) {
				t.Errorf("5xx detail = %q, want the generic one", p.Detail)
			}
			for _, secret := range []string{"hunter2", "nil map", "panic"} {
				if strings.Contains(body, secret) {
					t.Errorf("response leaks %q: %s", secret, body)
				}
			}
			if tt.wantCode == errs.ValidationFailed && (len(p.Errors) != 1 || p.Errors[0].Pointer != "/title") {
				t.Errorf("errors = %v, want the gRPC handler's field violation", p.Errors)
			}
			if tt.wantCode == errs.TokenExpired && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}

			grpcServer := c.spanOf(t, trace.SpanKindServer, func(n string) bool { return n == "piazza.rpctest.v1.TestService/Fail" })
			httpServer := c.spanOf(t, trace.SpanKindServer, func(n string) bool { return n == "GET /fail/{code}" })
			if p.TraceID == "" || p.TraceID != grpcServer.SpanContext().TraceID().String() {
				t.Errorf("problem trace_id %q, gRPC server span trace %v: not one trace", p.TraceID, grpcServer.SpanContext().TraceID())
			}
			if p.TraceID != httpServer.SpanContext().TraceID().String() {
				t.Errorf("problem trace_id %q, HTTP server span trace %v", p.TraceID, httpServer.SpanContext().TraceID())
			}
			if p.SpanID != httpServer.SpanContext().SpanID().String() {
				t.Errorf("problem span_id %q, want the HTTP server span %v", p.SpanID, httpServer.SpanContext().SpanID())
			}
			if grpcServer.Parent().TraceID() != httpServer.SpanContext().TraceID() || !grpcServer.Parent().IsRemote() {
				t.Errorf("gRPC server span's parent %v is not a remote span of the HTTP trace", grpcServer.Parent())
			}
		})
	}
}

func TestPublicMuxUnknownRouteAndWrongMethodAreProblems(t *testing.T) {
	c := startCrossHop(t)

	resp, p, _ := c.get(t, http.MethodGet, "/no/such/route")
	if resp.StatusCode != http.StatusNotFound || p.Code != errs.NotFound || len(p.TraceID) != 32 || len(p.SpanID) != 16 {
		t.Errorf("unknown route: %d %+v", resp.StatusCode, p)
	}
	span := c.spanOf(t, trace.SpanKindServer, func(n string) bool { return n == "GET" })
	if p.TraceID != span.SpanContext().TraceID().String() {
		t.Errorf("unknown route trace_id %q, span %v", p.TraceID, span.SpanContext().TraceID())
	}

	resp, p, _ = c.get(t, http.MethodPost, "/fail/not_found")
	if resp.StatusCode != http.StatusMethodNotAllowed || p.Code != errs.MethodNotAllowed || p.TraceID == "" {
		t.Errorf("wrong method: %d %+v", resp.StatusCode, p)
	}
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, http.MethodGet) {
		t.Errorf("Allow = %q, want GET in it", allow)
	}
}

// Compile-time check that the test service is what rpc.Server registers.
var _ grpc.ServiceRegistrar = (*rpc.Server)(nil)
