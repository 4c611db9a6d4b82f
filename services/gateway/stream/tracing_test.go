package stream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/services/gateway/stream"
)

// openTestStream opens a stream of user u on srv and returns the SSE ids it receives.
func openTestStream(t *testing.T, srv *httptest.Server, u string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?u="+u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream of %s: status %d", u, resp.StatusCode)
	}
	// The stream is indexed before its headers are sent: deliveries reach it from now on.
	ids := make(chan string, 16)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
	}()
	return ids
}

func awaitID(t *testing.T, ids <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case id := <-ids:
			if id == want {
				return
			}
		case <-timeout:
			t.Fatalf("no frame with id %s", want)
		}
	}
}

func batch(t *testing.T, ctx context.Context, seqs map[string]int64) []byte {
	t.Helper()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	b := realtimev1.Batch{TraceParent: carrier.Get("traceparent"), OccurredAt: time.Now()}
	for user, seq := range seqs {
		b.Deliveries = append(b.Deliveries, realtimev1.Delivery{UserID: user, Notification: realtimev1.Notification{
			Seq: seq, ID: "event", Type: "post.created", CreatedAt: time.Now(), Data: json.RawMessage(`{}`),
		}})
	}
	msg, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestEachStreamsWriteOfABatchIsASpanOfItsTraceLinkedToTheBatch(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	push := &chanPush{}
	cfg := validConfig()
	cfg.Push, cfg.TracerProvider, cfg.Propagator = push, tp, propagation.TraceContext{}
	hub, err := stream.NewHub(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	<-hub.Ready()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := hub.Serve(w, r, stream.Client{UserID: r.URL.Query().Get("u")}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})

	// One event fans out to three streams: two of alice's, one of bob's.
	alice1, alice2, bob := openTestStream(t, srv, "alice"), openTestStream(t, srv, "alice"), openTestStream(t, srv, "bob")

	// First a batch of an unsampled trace: it makes no span.
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	uctx, unsampled := never.Tracer("test").Start(context.Background(), "unsampled")
	push.ch <- batch(t, uctx, map[string]int64{"alice": 1})
	unsampled.End()

	pctx, producer := tp.Tracer("test").Start(context.Background(), "send gateway_events")
	push.ch <- batch(t, pctx, map[string]int64{"alice": 2, "bob": 1})
	producer.End()
	for _, ids := range []<-chan string{alice1, alice2} {
		awaitID(t, ids, "2")
	}
	awaitID(t, bob, "1")

	var dispatch sdktrace.ReadOnlySpan
	var writes []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for len(writes) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d write spans, want 3", len(writes))
		}
		time.Sleep(5 * time.Millisecond) // polling interval: the spans end just after the flush
		dispatch, writes = nil, nil
		for _, s := range rec.Ended() {
			switch s.Name() {
			case "deliver notifications":
				dispatch = s
			case "sse write":
				writes = append(writes, s)
			}
		}
	}
	if dispatch == nil || dispatch.Parent().SpanID() != producer.SpanContext().SpanID() || dispatch.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("the batch's handling is not a consumer span under the producer span")
	}
	if len(writes) != 3 {
		t.Fatalf("%d write spans, want 3 (none for the unsampled batch)", len(writes))
	}
	for i, w := range writes {
		links := w.Links()
		if w.SpanContext().TraceID() != producer.SpanContext().TraceID() || w.Parent().SpanID() != dispatch.SpanContext().SpanID() {
			t.Errorf("write %d is not in the event's trace under the batch span", i)
		}
		if len(links) != 1 || links[0].SpanContext.SpanID() != dispatch.SpanContext().SpanID() {
			t.Errorf("write %d links %v, want the batch span", i, links)
		}
		if w.StartTime().After(w.EndTime()) || w.Status().Code == codes.Error {
			t.Errorf("write %d: start %v end %v status %v", i, w.StartTime(), w.EndTime(), w.Status())
		}
	}
}
