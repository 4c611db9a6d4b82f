package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	rpctestv1 "github.com/piazza-social/piazza/gen/piazza/rpctest/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
)

// testService does what each request asks.
type testService struct {
	rpctestv1.UnimplementedTestServiceServer
	release chan struct{} // "block" waits on it (or on the context)
	blocked atomic.Int32  // "block" calls that reached the handler
}

func (s *testService) Echo(ctx context.Context, req *rpctestv1.EchoRequest) (*rpctestv1.EchoResponse, error) {
	switch req.GetMessage() {
	case "deadline?":
		dl, ok := ctx.Deadline()
		if !ok {
			return &rpctestv1.EchoResponse{Message: "none"}, nil
		}
		return &rpctestv1.EchoResponse{Message: time.Until(dl).String()}, nil
	case "block":
		s.blocked.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.release:
			return &rpctestv1.EchoResponse{Message: "released"}, nil
		}
	}
	return &rpctestv1.EchoResponse{Message: req.GetMessage()}, nil
}

func (s *testService) Fail(_ context.Context, req *rpctestv1.FailRequest) (*rpctestv1.FailResponse, error) {
	if req.GetPanic() {
		panic("secret panic value hunter2")
	}
	switch c := errs.Code(req.GetCode()); c {
	case "plain":
		return nil, errors.New("db: password=hunter2 rejected")
	case errs.ValidationFailed:
		return nil, errs.Validation(req.GetMessage(), errs.Field("/title", "is required"), errs.Field("/tags/2", "too long"))
	case errs.RateLimited:
		return nil, errs.New(c, req.GetMessage()).WithRetryAfter(3 * time.Second)
	default:
		return nil, errs.Wrap(errors.New("internal cause hunter2"), c, req.GetMessage())
	}
}

func (s *testService) EchoStream(req *rpctestv1.EchoStreamRequest, stream grpc.ServerStreamingServer[rpctestv1.EchoResponse]) error {
	for range req.GetCount() {
		if err := stream.Send(&rpctestv1.EchoResponse{Message: req.GetMessage()}); err != nil {
			return err
		}
	}
	if c := req.GetFailCode(); c != "" {
		return errs.New(errs.Code(c), "stream failed")
	}
	return nil
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// records returns the JSON log records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func findRecord(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

type harness struct {
	srv    *rpc.Server
	svc    *testService
	client rpctestv1.TestServiceClient
	conn   *grpc.ClientConn
	logs   *syncBuffer
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	cancel context.CancelFunc
	done   chan error
}

type harnessConfig struct {
	server rpc.ServerConfig
	client rpc.ClientConfig
}

// start runs a Server with the test service on a loopback port and dials
// it; both share an in-memory span recorder.
func start(t *testing.T, hc harnessConfig) *harness {
	t.Helper()
	h := &harness{logs: &syncBuffer{}, spans: tracetest.NewSpanRecorder(), svc: &testService{release: make(chan struct{})}}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	hc.server.TracerProvider = h.tp
	hc.server.Propagator = propagation.TraceContext{}
	h.srv = rpc.NewServer(hc.server, log)
	rpctestv1.RegisterTestServiceServer(h.srv, h.svc)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.srv.Serve(ctx, ln) }()
	<-h.srv.Ready()

	hc.client.Target = h.srv.Addr().String()
	hc.client.TracerProvider = h.tp
	hc.client.Propagator = propagation.TraceContext{}
	h.conn, err = rpc.Dial(hc.client, log)
	if err != nil {
		t.Fatal(err)
	}
	h.client = rpctestv1.NewTestServiceClient(h.conn)
	t.Cleanup(func() {
		_ = h.conn.Close()
		h.stop(t)
	})
	return h
}

// stop cancels the server and returns what Serve returned (once).
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if !ok {
			return nil
		}
		close(h.done)
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop within 10s")
		return nil
	}
}

func TestEveryCodeCrossesTheWireWithItsExactCode(t *testing.T) {
	h := start(t, harnessConfig{})
	ctx := context.Background()
	for _, code := range errs.Codes() {
		t.Run(string(code), func(t *testing.T) {
			_, err := h.client.Fail(ctx, &rpctestv1.FailRequest{Code: string(code), Message: "safe message"})
			e, ok := errors.AsType[*errs.Error](err)
			if !ok {
				t.Fatalf("client error %T %v is not an *errs.Error", err, err)
			}
			if e.Code != code {
				t.Fatalf("code = %q, want %q", e.Code, code)
			}
			if e.Message != "safe message" {
				t.Errorf("message = %q", e.Message)
			}
			if got := status.Code(err); got != code.GRPCCode() {
				t.Errorf("gRPC code seen through the error = %v, want %v", got, code.GRPCCode())
			}
			if strings.Contains(fmt.Sprint(status.Convert(err).Proto()), "hunter2") {
				t.Errorf("internal cause crossed the wire: %v", status.Convert(err).Proto())
			}
			switch code {
			case errs.ValidationFailed:
				want := []errs.FieldViolation{errs.Field("/title", "is required"), errs.Field("/tags/2", "too long")}
				if len(e.Fields) != 2 || e.Fields[0] != want[0] || e.Fields[1] != want[1] {
					t.Errorf("fields = %v, want %v", e.Fields, want)
				}
			case errs.RateLimited:
				if e.RetryAfter != 3*time.Second {
					t.Errorf("retry after = %v, want 3s", e.RetryAfter)
				}
			}
		})
	}
}

func TestPlainHandlerErrorBecomesInternalAndOnlyTheLogSeesIt(t *testing.T) {
	h := start(t, harnessConfig{})
	_, err := h.client.Fail(context.Background(), &rpctestv1.FailRequest{Code: "plain"})
	if got := errs.CodeOf(err); got != errs.Internal {
		t.Fatalf("code = %q, want internal", got)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "hunter2") {
		t.Errorf("status message leaks the cause: %q", msg)
	}
	rec := findRecord(h.logs.records(t), "grpc request")
	if rec == nil || rec["level"] != "ERROR" || rec["code"] != "internal" ||
		!strings.Contains(fmt.Sprint(rec["error"]), "hunter2") || rec["method"] != "/piazza.rpctest.v1.TestService/Fail" {
		t.Errorf("log record = %v, want an ERROR with method, code internal and the cause", rec)
	}
}

func TestHandlerPanicBecomesInternalAndIsLoggedWithStack(t *testing.T) {
	h := start(t, harnessConfig{})
	_, err := h.client.Fail(context.Background(), &rpctestv1.FailRequest{Panic: true})
	if got := errs.CodeOf(err); got != errs.Internal {
		t.Fatalf("code = %q, want internal", got)
	}
	if strings.Contains(status.Convert(err).Message(), "hunter2") {
		t.Errorf("panic value leaked: %q", status.Convert(err).Message())
	}
	rec := findRecord(h.logs.records(t), "panic in grpc handler")
	if rec == nil || !strings.Contains(fmt.Sprint(rec["stack"]), "rpc_test.(*testService).Fail") {
		t.Errorf("panic log = %v, want one with the handler's stack", rec)
	}
	// The server survives.
	if _, err := h.client.Echo(context.Background(), &rpctestv1.EchoRequest{Message: "hi"}); err != nil {
		t.Errorf("call after the panic failed: %v", err)
	}
}

func TestSuccessfulCallIsLoggedWithMethodCodeAndDuration(t *testing.T) {
	h := start(t, harnessConfig{})
	if _, err := h.client.Echo(context.Background(), &rpctestv1.EchoRequest{Message: "hi"}); err != nil {
		t.Fatal(err)
	}
	rec := findRecord(h.logs.records(t), "grpc request")
	if rec == nil || rec["method"] != "/piazza.rpctest.v1.TestService/Echo" || rec["code"] != "ok" || rec["level"] != "DEBUG" {
		t.Fatalf("log record = %v", rec)
	}
	if _, ok := rec["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms missing: %v", rec)
	}
}

func TestClientDefaultDeadline(t *testing.T) {
	h := start(t, harnessConfig{client: rpc.ClientConfig{DefaultTimeout: 3 * time.Second}})
	remaining := func(ctx context.Context) string {
		t.Helper()
		resp, err := h.client.Echo(ctx, &rpctestv1.EchoRequest{Message: "deadline?"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMessage()
	}
	parse := func(s string) time.Duration {
		t.Helper()
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("server saw %q, want a deadline", s)
		}
		return d
	}

	if d := parse(remaining(context.Background())); d <= 0 || d > 3*time.Second {
		t.Errorf("without a deadline the server saw %v left, want (0, 3s]", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d := parse(remaining(ctx)); d < 50*time.Second {
		t.Errorf("the caller's 1m deadline became %v", d)
	}
	if got := remaining(rpc.WithoutDefaultDeadline(context.Background())); got != "none" {
		t.Errorf("WithoutDefaultDeadline: server saw deadline %s", got)
	}
}

func TestDefaultDeadlineExpiresAsDeadlineExceeded(t *testing.T) {
	h := start(t, harnessConfig{client: rpc.ClientConfig{DefaultTimeout: 200 * time.Millisecond}})
	_, err := h.client.Echo(context.Background(), &rpctestv1.EchoRequest{Message: "block"})
	if got := errs.CodeOf(err); got != errs.DeadlineExceeded {
		t.Errorf("code = %q (%v), want deadline_exceeded", got, err)
	}
}

func TestStreamErrorsKeepTheirCode(t *testing.T) {
	h := start(t, harnessConfig{})
	ctx := context.Background()

	stream, err := h.client.EchoStream(ctx, &rpctestv1.EchoStreamRequest{Message: "m", Count: 3, FailCode: string(errs.TokenExpired)})
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
		got++
	}
	if got != 3 || errs.CodeOf(err) != errs.TokenExpired {
		t.Errorf("received %d messages then %v, want 3 then token_expired", got, err)
	}

	stream, err = h.client.EchoStream(ctx, &rpctestv1.EchoStreamRequest{Message: "m", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("end of a successful stream = %v, want io.EOF", err)
	}
}

func TestHealthServiceReportsAndFollowsServingStatus(t *testing.T) {
	h := start(t, harnessConfig{})
	hc := healthpb.NewHealthClient(h.conn)
	ctx := context.Background()
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check %q: %v", service, err)
		}
		return resp.GetStatus()
	}
	if got := check(""); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("overall status = %v, want SERVING", got)
	}
	const svc = "piazza.rpctest.v1.TestService"
	h.srv.SetServingStatus(svc, true)
	if got := check(svc); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("%s = %v, want SERVING", svc, got)
	}
	h.srv.SetServingStatus(svc, false)
	if got := check(svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("%s = %v, want NOT_SERVING", svc, got)
	}
}

func TestServeDrainsInFlightCallsOnCancel(t *testing.T) {
	h := start(t, harnessConfig{})
	callErr := make(chan error, 1)
	go func() {
		_, err := h.client.Echo(rpc.WithoutDefaultDeadline(context.Background()), &rpctestv1.EchoRequest{Message: "block"})
		callErr <- err
	}()
	waitFor(t, func() bool { return inFlight(h) })

	h.cancel()
	select {
	case err := <-h.done:
		t.Fatalf("Serve returned %v while a call was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.svc.release)
	if err := <-callErr; err != nil {
		t.Errorf("in-flight call failed during the drain: %v", err)
	}
	if err := h.stop(t); err != nil {
		t.Errorf("Serve = %v, want nil after a graceful drain", err)
	}
}

func TestServeStopsHardAfterShutdownTimeout(t *testing.T) {
	h := start(t, harnessConfig{server: rpc.ServerConfig{ShutdownTimeout: 200 * time.Millisecond}})
	go func() {
		_, _ = h.client.Echo(rpc.WithoutDefaultDeadline(context.Background()), &rpctestv1.EchoRequest{Message: "block"})
	}()
	waitFor(t, func() bool { return inFlight(h) })
	begin := time.Now()
	err := h.stop(t)
	if err == nil {
		t.Fatal("Serve = nil, want an error after the hard stop")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("hard stop took %v", d)
	}
}

func TestClientAndServerSpansShareOneTrace(t *testing.T) {
	h := start(t, harnessConfig{})
	ctx, parent := h.tp.Tracer("test").Start(context.Background(), "parent")
	_, err := h.client.Echo(ctx, &rpctestv1.EchoRequest{Message: "hi"})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	var server, client sdktrace.ReadOnlySpan
	waitFor(t, func() bool {
		for _, s := range h.spans.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindServer:
				server = s
			case trace.SpanKindClient:
				client = s
			}
		}
		return server != nil && client != nil
	})
	want := parent.SpanContext().TraceID()
	if server.SpanContext().TraceID() != want || client.SpanContext().TraceID() != want {
		t.Errorf("trace ids: parent %v, client %v, server %v", want, client.SpanContext().TraceID(), server.SpanContext().TraceID())
	}
	if server.Parent().SpanID() != client.SpanContext().SpanID() {
		t.Errorf("server span's parent = %v, want the client span %v", server.Parent().SpanID(), client.SpanContext().SpanID())
	}
}

func TestDialRequiresTarget(t *testing.T) {
	if _, err := rpc.Dial(rpc.ClientConfig{}, nil); err == nil {
		t.Error("Dial without a target succeeded")
	}
}

func TestServeTwiceFails(t *testing.T) {
	h := start(t, harnessConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Serve(context.Background(), ln); err == nil {
		t.Error("second Serve succeeded")
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	h := start(t, harnessConfig{})
	err := h.conn.Invoke(context.Background(), "/piazza.rpctest.v1.TestService/Nope", &rpctestv1.EchoRequest{}, &rpctestv1.EchoResponse{})
	if errs.CodeOf(err) != errs.Internal {
		t.Errorf("err = %v (code %q), want internal", err, errs.CodeOf(err))
	}
	// The original status stays available as the cause, for the logs.
	if got := status.Code(errors.Unwrap(err)); got != codes.Unimplemented {
		t.Errorf("cause's gRPC code = %v, want Unimplemented", got)
	}
}

// inFlight reports whether a "block" call has reached the handler.
func inFlight(h *harness) bool { return h.svc.blocked.Load() > 0 }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
