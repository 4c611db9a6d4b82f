// Package eventstest holds the contract suite that every events.Bus adapter must pass, so that
// services behave the same on the embedded bus and on Kafka.
package eventstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/events"
)

// WaitTimeout bounds every wait of the suite: for a message, a handler call or a span. It is
// generous because a Kafka consumer group takes seconds to join; a passing run waits far less.
const WaitTimeout = 45 * time.Second

// RunBusContract checks that the adapter built by newBus honours the events.Bus contract, both
// directly and through an events.Router (trace propagation, retries and dead letters).
//
// newBus is called once per subtest and must return a fresh, ready bus; it registers the bus's
// own cleanup (closing it) with t.Cleanup. The suite closes the subscribers it creates, and
// uses topic and group names unique to each run, so that a shared server (a real Kafka) can
// run the suite repeatedly. The only shared name is events.DeadLetterTopic, whose old messages
// the suite skips.
func RunBusContract(t *testing.T, newBus func(t *testing.T) events.Bus) {
	t.Helper()
	t.Run("RoundtripKeepsUUIDMetadataAndPayload", func(t *testing.T) { testRoundtrip(t, newBus(t)) })
	t.Run("EveryGroupReceivesEveryMessage", func(t *testing.T) { testEveryGroup(t, newBus(t)) })
	t.Run("SamePartitionKeyKeepsPublishOrder", func(t *testing.T) { testPartitionOrder(t, newBus(t), false) })
	t.Run("SamePartitionKeyKeepsOrderWithinOnePublish", func(t *testing.T) { testPartitionOrder(t, newBus(t), true) })
	t.Run("NackedMessageIsRedelivered", func(t *testing.T) { testNackRedelivery(t, newBus(t)) })
	t.Run("UnackedMessageGoesToNextSubscriberOfGroup", func(t *testing.T) { testUnackedOnClose(t, newBus(t)) })
	t.Run("RouterHandlesInChildSpanOfProducer", func(t *testing.T) { testRouterTrace(t, newBus(t)) })
	t.Run("RouterDeadLettersAfterMaxAttemptsAndMovesOn", func(t *testing.T) { testRouterDeadLetters(t, newBus(t)) })
}

func testRoundtrip(t *testing.T, bus events.Bus) {
	topic := uniqueName("roundtrip")
	msgs := subscribe(t, bus, uniqueName("group"), topic)

	// JSON, because SQL adapters may keep payloads in JSON columns; with non-ASCII text to catch
	// encoding slips.
	payload := []byte(`{"text":"ciao, piazza ☕","n":42}`)
	sent := message.NewMessage(uuid.NewString(), payload)
	sent.Metadata.Set(events.PartitionKey, "aggregate-1")
	sent.Metadata.Set(events.MetadataEventType, "contract.roundtrip")
	sent.Metadata.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	sent.Metadata.Set("with spaces", "a value: with = signs; and ünïcode")
	publish(t, bus, topic, sent)

	got := receive(t, msgs)
	got.Ack()
	if got.UUID != sent.UUID {
		t.Errorf("UUID = %q, want %q", got.UUID, sent.UUID)
	}
	if !bytes.Equal(got.Payload, payload) {
		t.Errorf("payload = %q, want %q", got.Payload, payload)
	}
	for k, want := range sent.Metadata {
		if v, ok := got.Metadata[k]; !ok || v != want {
			t.Errorf("metadata[%q] = %q (present: %v), want %q", k, v, ok, want)
		}
	}
}

func testEveryGroup(t *testing.T, bus events.Bus) {
	topic := uniqueName("groups")
	groupA := subscribe(t, bus, uniqueName("group_a"), topic)
	groupB := subscribe(t, bus, uniqueName("group_b"), topic)

	want := map[string]bool{}
	for i := range 5 {
		m := message.NewMessage(uuid.NewString(), fmt.Appendf(nil, `{"i":%d}`, i))
		m.Metadata.Set(events.PartitionKey, fmt.Sprintf("aggregate-%d", i))
		publish(t, bus, topic, m)
		want[m.UUID] = true
	}
	for name, ch := range map[string]<-chan *message.Message{"A": groupA, "B": groupB} {
		got := map[string]bool{}
		for len(got) < len(want) {
			m := receive(t, ch)
			m.Ack()
			if !want[m.UUID] {
				t.Fatalf("group %s received unexpected message %s", name, m.UUID)
			}
			got[m.UUID] = true
		}
	}
}

// testPartitionOrder publishes interleaved messages of a few keys one call each, or all in one
// call when together is set, and checks each key's messages arrive in publish order.
func testPartitionOrder(t *testing.T, bus events.Bus, together bool) {
	topic := uniqueName("order")
	msgs := subscribe(t, bus, uniqueName("group"), topic)

	keys := []string{"author-1", "author-2", "author-1", "author-3"}
	want := map[string][]string{}
	var all []*message.Message
	for i := range 20 {
		key := keys[i%len(keys)]
		m := message.NewMessage(uuid.NewString(), fmt.Appendf(nil, `{"seq":%d}`, i))
		m.Metadata.Set(events.PartitionKey, key)
		if together {
			all = append(all, m)
		} else {
			publish(t, bus, topic, m)
		}
		want[key] = append(want[key], m.UUID)
	}
	if together {
		publish(t, bus, topic, all...)
	}

	got := map[string][]string{}
	for n := 0; n < 20; n++ {
		m := receive(t, msgs)
		key := m.Metadata.Get(events.PartitionKey)
		got[key] = append(got[key], m.UUID)
		m.Ack()
	}
	for key := range want {
		if !slices.Equal(got[key], want[key]) {
			t.Errorf("key %s: received in order\n%v\nwant publish order\n%v", key, got[key], want[key])
		}
	}
}

func testNackRedelivery(t *testing.T, bus events.Bus) {
	topic := uniqueName("nack")
	msgs := subscribe(t, bus, uniqueName("group"), topic)

	sent := message.NewMessage(uuid.NewString(), []byte(`{"nack":true}`))
	sent.Metadata.Set(events.PartitionKey, "aggregate-1")
	publish(t, bus, topic, sent)

	first := receive(t, msgs)
	if first.UUID != sent.UUID {
		t.Fatalf("received %s, want %s", first.UUID, sent.UUID)
	}
	first.Nack()
	again := receive(t, msgs)
	again.Ack()
	if again.UUID != sent.UUID || !bytes.Equal(again.Payload, sent.Payload) {
		t.Fatalf("after nack received %s %q, want %s %q again", again.UUID, again.Payload, sent.UUID, sent.Payload)
	}
}

func testUnackedOnClose(t *testing.T, bus events.Bus) {
	topic := uniqueName("handover")
	group := uniqueName("group")

	first, err := bus.Subscriber(group)
	if err != nil {
		t.Fatalf("Subscriber(%s): %v", group, err)
	}
	firstMsgs, err := first.Subscribe(testContext(t), topic)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", topic, err)
	}

	sent := message.NewMessage(uuid.NewString(), []byte(`{"handover":true}`))
	sent.Metadata.Set(events.PartitionKey, "aggregate-1")
	publish(t, bus, topic, sent)

	held := receive(t, firstMsgs)
	if held.UUID != sent.UUID {
		t.Fatalf("first subscriber received %s, want %s", held.UUID, sent.UUID)
	}
	// held is neither acked nor nacked: closing the subscriber must not count it as consumed.
	closed := make(chan error, 1)
	go func() { closed <- first.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("closing the first subscriber: %v", err)
		}
	case <-time.After(WaitTimeout):
		t.Fatalf("closing a subscriber that holds an unacked message did not return within %s", WaitTimeout)
	}

	next := subscribe(t, bus, group, topic)
	got := receive(t, next)
	got.Ack()
	if got.UUID != sent.UUID {
		t.Fatalf("next subscriber of the group received %s, want the unacked %s", got.UUID, sent.UUID)
	}
}

func testRouterTrace(t *testing.T, bus events.Bus) {
	topic := uniqueName("traced")
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	type call struct {
		span    trace.SpanContext
		baggage string
		env     events.Envelope
	}
	calls := make(chan call, 10)
	router := newRouter(t, bus, tp, prop, events.RetryPolicy{})
	sub := subscriber(t, bus, uniqueName("group"))
	if err := router.AddHandler("contract_traced", topic, sub, func(ctx context.Context, ev events.Envelope) error {
		calls <- call{span: trace.SpanContextFromContext(ctx), baggage: baggage.FromContext(ctx).Member("tenant").Value(), env: ev}
		return nil
	}); err != nil {
		t.Fatalf("AddHandler: %v", err)
	}
	runRouter(t, router)

	pub, err := events.NewPublisher(events.PublisherConfig{Publisher: bus, TracerProvider: tp, Propagator: prop})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	env := newEnvelope(t, "contract.traced", "aggregate-1")
	member, _ := baggage.NewMember("tenant", "piazza")
	bag, _ := baggage.New(member)
	ctx, root := tp.Tracer("eventstest").Start(baggage.ContextWithBaggage(testContext(t), bag), "request")
	if err := pub.Publish(ctx, topic, env); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	root.End()

	var got call
	select {
	case got = <-calls:
	case <-time.After(WaitTimeout):
		t.Fatalf("handler not called within %s", WaitTimeout)
	}
	if got.env.ID != env.ID {
		t.Fatalf("handler got event %s, want %s", got.env.ID, env.ID)
	}
	if got.baggage != "piazza" {
		t.Errorf("baggage member tenant = %q in the handler, want %q", got.baggage, "piazza")
	}

	producer := awaitSpan(t, spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindProducer && s.Name() == "send "+topic
	})
	consumer := awaitSpan(t, spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindConsumer && s.Name() == "process "+topic
	})
	if producer.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("producer span's parent = %s, want the request span %s", producer.Parent().SpanID(), root.SpanContext().SpanID())
	}
	if consumer.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("consumer trace id = %s, want the producer's %s", consumer.SpanContext().TraceID(), root.SpanContext().TraceID())
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || !consumer.Parent().IsRemote() {
		t.Errorf("consumer span's parent = %s (remote %v), want the remote producer span %s",
			consumer.Parent().SpanID(), consumer.Parent().IsRemote(), producer.SpanContext().SpanID())
	}
	if got.span.SpanID() != consumer.SpanContext().SpanID() {
		t.Errorf("handler ran in span %s, want the consumer span %s", got.span.SpanID(), consumer.SpanContext().SpanID())
	}
}

func testRouterDeadLetters(t *testing.T, bus events.Bus) {
	const maxAttempts = 3
	topic := uniqueName("failing")
	handlerName := uniqueName("handler")
	deadLetters := subscribe(t, bus, uniqueName("dead_letter_watcher"), events.DeadLetterTopic)

	var (
		mu       sync.Mutex
		attempts = map[string]int{}
	)
	handled := make(chan string, 10)
	router := newRouter(t, bus, nil, nil, events.RetryPolicy{
		MaxAttempts: maxAttempts, InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond,
	})
	if err := router.AddHandler(handlerName, topic, subscriber(t, bus, uniqueName("group")), func(_ context.Context, ev events.Envelope) error {
		mu.Lock()
		attempts[ev.ID]++
		mu.Unlock()
		switch ev.Type {
		case "contract.always_fails":
			return errors.New("boom: downstream unavailable")
		case "contract.rejected":
			return events.Permanent(errors.New("rejected: invalid payload"))
		}
		handled <- ev.ID
		return nil
	}); err != nil {
		t.Fatalf("AddHandler: %v", err)
	}
	runRouter(t, router)

	// All on one partition key, in this order: the healthy event comes last, so its handling
	// proves that the failures before it did not block the partition.
	const key = "aggregate-1"
	failing := newEnvelope(t, "contract.always_fails", key)
	rejected := newEnvelope(t, "contract.rejected", key)
	malformed := message.NewMessage(uuid.NewString(), []byte(`{"id": "not an envelope"`))
	malformed.Metadata.Set(events.PartitionKey, key)
	healthy := newEnvelope(t, "contract.healthy", key)
	for _, env := range []events.Envelope{failing, rejected} {
		publish(t, bus, topic, envelopeMessage(t, env))
	}
	publish(t, bus, topic, malformed)
	publish(t, bus, topic, envelopeMessage(t, healthy))

	select {
	case id := <-handled:
		if id != healthy.ID {
			t.Fatalf("handled %s, want only the healthy event %s", id, healthy.ID)
		}
	case <-time.After(WaitTimeout):
		t.Fatalf("the event after the failing ones was not handled within %s", WaitTimeout)
	}

	want := map[string]struct {
		attempts int
		reason   string
		payload  []byte
	}{
		failing.ID:     {maxAttempts, "boom: downstream unavailable", envelopeMessage(t, failing).Payload},
		rejected.ID:    {1, "rejected: invalid payload", envelopeMessage(t, rejected).Payload},
		malformed.UUID: {1, "malformed event envelope", malformed.Payload},
	}
	seen := map[string]bool{}
	for len(seen) < len(want) {
		dl := receive(t, deadLetters)
		dl.Ack()
		w, ok := want[dl.UUID]
		if !ok || seen[dl.UUID] {
			continue // an older run's dead letter, or a redelivered duplicate
		}
		seen[dl.UUID] = true
		md := dl.Metadata
		if got := md.Get(events.MetadataPoisonAttempts); got != strconv.Itoa(w.attempts) {
			t.Errorf("dead letter %s: attempts = %q, want %d", dl.UUID, got, w.attempts)
		}
		if got := md.Get(events.MetadataPoisonReason); !strings.Contains(got, w.reason) {
			t.Errorf("dead letter %s: reason = %q, want it to contain %q", dl.UUID, got, w.reason)
		}
		if got := md.Get(events.MetadataPoisonTopic); got != topic {
			t.Errorf("dead letter %s: original topic = %q, want %q", dl.UUID, got, topic)
		}
		if got := md.Get(events.MetadataPoisonHandler); got != handlerName {
			t.Errorf("dead letter %s: handler = %q, want %q", dl.UUID, got, handlerName)
		}
		first, err1 := time.Parse(time.RFC3339Nano, md.Get(events.MetadataPoisonFirstFailure))
		last, err2 := time.Parse(time.RFC3339Nano, md.Get(events.MetadataPoisonLastFailure))
		if err1 != nil || err2 != nil || last.Before(first) {
			t.Errorf("dead letter %s: failure times first=%q last=%q, want two RFC 3339 times, first <= last",
				dl.UUID, md.Get(events.MetadataPoisonFirstFailure), md.Get(events.MetadataPoisonLastFailure))
		}
		if got := md.Get(events.PartitionKey); got != key {
			t.Errorf("dead letter %s: original metadata %s = %q, want %q", dl.UUID, events.PartitionKey, got, key)
		}
		if !bytes.Equal(dl.Payload, w.payload) {
			t.Errorf("dead letter %s: payload = %q, want the original %q", dl.UUID, dl.Payload, w.payload)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if attempts[failing.ID] != maxAttempts {
		t.Errorf("the always-failing handler ran %d times, want exactly %d", attempts[failing.ID], maxAttempts)
	}
	if attempts[rejected.ID] != 1 {
		t.Errorf("the handler returning a Permanent error ran %d times, want 1", attempts[rejected.ID])
	}
}

// --- helpers ---

// uniqueName returns prefix plus a random suffix, in the characters that both Kafka topic names
// and SQL identifiers accept.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "contract_" + prefix + "_" + hex.EncodeToString(b[:])
}

// testContext is cancelled when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func subscriber(t *testing.T, bus events.Bus, group string) message.Subscriber {
	t.Helper()
	sub, err := bus.Subscriber(group)
	if err != nil {
		t.Fatalf("Subscriber(%s): %v", group, err)
	}
	t.Cleanup(func() {
		if err := sub.Close(); err != nil {
			t.Errorf("closing subscriber of group %s: %v", group, err)
		}
	})
	return sub
}

func subscribe(t *testing.T, bus events.Bus, group, topic string) <-chan *message.Message {
	t.Helper()
	msgs, err := subscriber(t, bus, group).Subscribe(testContext(t), topic)
	if err != nil {
		t.Fatalf("Subscribe(%s) as %s: %v", topic, group, err)
	}
	return msgs
}

func publish(t *testing.T, bus events.Bus, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := bus.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("subscription channel closed while waiting for a message")
		}
		return m
	case <-time.After(WaitTimeout):
		t.Fatalf("no message within %s", WaitTimeout)
	}
	return nil
}

func newEnvelope(t *testing.T, eventType, aggregateID string) events.Envelope {
	t.Helper()
	env, err := events.New(eventType, aggregateID, "eventstest", map[string]string{"type": eventType})
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	return env
}

func envelopeMessage(t *testing.T, env events.Envelope) *message.Message {
	t.Helper()
	msg, err := events.NewMessage(context.Background(), env, propagation.TraceContext{})
	if err != nil {
		t.Fatalf("events.NewMessage: %v", err)
	}
	return msg
}

// newRouter builds a router dead-lettering through bus, with the given tracing (nil: a tracer
// provider and propagator of its own, never the global ones) and a no-op meter provider.
func newRouter(t *testing.T, bus events.Bus, tp trace.TracerProvider, prop propagation.TextMapPropagator, retry events.RetryPolicy) *events.Router {
	t.Helper()
	if tp == nil {
		tp = sdktrace.NewTracerProvider()
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	r, err := events.NewRouter(events.RouterConfig{
		DeadLetters:    bus,
		Retry:          retry,
		CloseTimeout:   10 * time.Second,
		TracerProvider: tp,
		MeterProvider:  noop.NewMeterProvider(),
		Propagator:     prop,
	}, testLogger(t))
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return r
}

// runRouter runs r until the test ends, then checks that it stopped cleanly.
func runRouter(t *testing.T, r *events.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router Run: %v", err)
			}
		case <-time.After(WaitTimeout):
			t.Errorf("router did not stop within %s of cancellation", WaitTimeout)
		}
	})
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(WaitTimeout):
		t.Fatalf("router not running within %s", WaitTimeout)
	}
}

func awaitSpan(t *testing.T, rec *tracetest.SpanRecorder, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		for _, s := range rec.Ended() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range rec.Ended() {
				names = append(names, s.Name())
			}
			t.Fatalf("span not ended within %s; ended spans: %v", WaitTimeout, names)
		}
		time.Sleep(10 * time.Millisecond) // polling interval of the await, not a fixed wait
	}
}

// testLogger returns a logger that writes Warn and above to the test's log until the test ends,
// and drops what goroutines log after that (t.Log would panic then).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
