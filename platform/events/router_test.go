package events

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The router is unit-tested on watermill's gochannel. gochannel does not satisfy the Bus
// contract (no consumer groups, no redelivery to a later subscriber), so these tests use it only
// as one topic's pipe; the contract suite in eventstest runs against the real adapters.

const (
	testTopic   = "posts"
	testHandler = "notify_followers"
	waitFor     = 10 * time.Second
)

type routerFixture struct {
	gc          *gochannel.GoChannel
	router      *Router
	metrics     *sdkmetric.ManualReader
	deadLetters <-chan *message.Message
	cancel      context.CancelFunc
	done        chan error
}

// newRouterFixture builds a router on a gochannel with h as its only handler, subscribes to
// the dead-letter topic, and starts the router.
func newRouterFixture(t *testing.T, retry RetryPolicy, h Handler) *routerFixture {
	t.Helper()
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	t.Cleanup(func() { _ = gc.Close() })
	reader := sdkmetric.NewManualReader()
	r, err := NewRouter(RouterConfig{
		DeadLetters:    gc,
		Retry:          retry,
		CloseTimeout:   5 * time.Second,
		TracerProvider: sdktrace.NewTracerProvider(),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		Propagator:     testPropagator,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	if err := r.AddHandler(testHandler, testTopic, gc, h); err != nil {
		t.Fatalf("AddHandler: %v", err)
	}
	dl, err := gc.Subscribe(context.Background(), DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &routerFixture{gc: gc, router: r, metrics: reader, deadLetters: dl, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- r.Run(ctx) }()
	t.Cleanup(func() { f.stop(t) })
	select {
	case <-r.Running():
	case <-time.After(waitFor):
		t.Fatal("router not running")
	}
	return f
}

// stop cancels Run and checks that it returns nil; it may be called more than once.
func (f *routerFixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err, ok := <-f.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(f.done)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancellation")
	}
}

func (f *routerFixture) publish(t *testing.T, msgs ...*message.Message) {
	t.Helper()
	if err := f.gc.Publish(testTopic, msgs...); err != nil {
		t.Fatal(err)
	}
}

func (f *routerFixture) publishEnvelope(t *testing.T, eventType string) Envelope {
	t.Helper()
	env, err := New(eventType, "author-1", "post", map[string]string{"post_id": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "request")
	defer span.End()
	msg, err := NewMessage(ctx, env, testPropagator)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, msg)
	return env
}

func (f *routerFixture) deadLetter(t *testing.T) *message.Message {
	t.Helper()
	select {
	case m := <-f.deadLetters:
		m.Ack()
		return m
	case <-time.After(waitFor):
		t.Fatal("no dead letter")
		return nil
	}
}

// counter sums the data points of the named counter for the test topic and handler.
func (f *routerFixture) counter(t *testing.T, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				topic, _ := dp.Attributes.Value("topic")
				handler, _ := dp.Attributes.Value("handler")
				if topic.AsString() == testTopic && handler.AsString() == testHandler {
					total += dp.Value
				}
			}
		}
	}
	return total
}

// durationCount counts the recorded handler attempts with the given outcome.
func (f *routerFixture) durationCount(t *testing.T, outcome string) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if m.Name != "events.handler.duration" || !ok {
				continue
			}
			for _, dp := range h.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key("outcome")); v.AsString() == outcome {
					n += dp.Count
				}
			}
		}
	}
	return n
}

// await polls cond until it holds or waitFor passes.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// calls records handler invocations.
type calls struct {
	mu    sync.Mutex
	times []time.Time
	envs  []Envelope
}

func (c *calls) record(ev Envelope) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.times = append(c.times, time.Now())
	c.envs = append(c.envs, ev)
	return len(c.times)
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

func TestRouterAcksAHandledEventAndCountsIt(t *testing.T) {
	var c calls
	f := newRouterFixture(t, RetryPolicy{}, func(_ context.Context, ev Envelope) error {
		c.record(ev)
		return nil
	})
	env := f.publishEnvelope(t, "post.created")

	await(t, "the handled counter reaches 1", func() bool { return f.counter(t, "events.handled") == 1 })
	if c.count() != 1 || c.envs[0].ID != env.ID {
		t.Fatalf("handler calls = %d (%v), want one with %s", c.count(), c.envs, env.ID)
	}
	if got := f.durationCount(t, "ok"); got != 1 {
		t.Errorf("duration histogram ok count = %d, want 1", got)
	}
	if got := f.counter(t, "events.failed") + f.counter(t, "events.poisoned"); got != 0 {
		t.Errorf("failed+poisoned = %d, want 0", got)
	}
}

func TestRouterRetriesWithBackoffThenDeadLettersWithFailureRecord(t *testing.T) {
	var c calls
	retry := RetryPolicy{MaxAttempts: 4, InitialInterval: 20 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Multiplier: 2}
	f := newRouterFixture(t, retry, func(_ context.Context, ev Envelope) error {
		n := c.record(ev)
		return errors.New("store unavailable, attempt " + strconv.Itoa(n))
	})
	env := f.publishEnvelope(t, "post.created")

	dl := f.deadLetter(t)
	if dl.UUID != env.ID {
		t.Fatalf("dead letter %s, want %s", dl.UUID, env.ID)
	}
	want := map[string]string{
		MetadataPoisonAttempts: "4",
		MetadataPoisonReason:   "store unavailable, attempt 4",
		MetadataPoisonTopic:    testTopic,
		MetadataPoisonHandler:  testHandler,
		MetadataEventType:      "post.created",
		PartitionKey:           "author-1",
	}
	for k, v := range want {
		if got := dl.Metadata.Get(k); got != v {
			t.Errorf("dead letter metadata %s = %q, want %q", k, got, v)
		}
	}
	if dl.Metadata.Get("traceparent") == "" {
		t.Error("dead letter lost the original trace context metadata")
	}
	first, err1 := time.Parse(time.RFC3339Nano, dl.Metadata.Get(MetadataPoisonFirstFailure))
	last, err2 := time.Parse(time.RFC3339Nano, dl.Metadata.Get(MetadataPoisonLastFailure))
	if err1 != nil || err2 != nil {
		t.Fatalf("failure times do not parse: %v, %v", err1, err2)
	}
	c.mu.Lock()
	times := append([]time.Time(nil), c.times...)
	c.mu.Unlock()
	if len(times) != 4 {
		t.Fatalf("handler ran %d times, want 4", len(times))
	}
	if first.Before(times[0]) || last.Before(times[3]) || !last.After(first) {
		t.Errorf("first/last failure %v/%v do not match the attempts %v..%v", first, last, times[0], times[3])
	}
	// Exponential backoff capped at MaxInterval: 20ms, 40ms, 50ms (no jitter).
	for i, minWait := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < minWait {
			t.Errorf("wait before attempt %d = %s, want at least %s", i+2, gap, minWait)
		}
	}

	await(t, "the poisoned counter reaches 1", func() bool { return f.counter(t, "events.poisoned") == 1 })
	if got := f.counter(t, "events.failed"); got != 4 {
		t.Errorf("failed counter = %d, want 4 (one per attempt)", got)
	}
	if got := f.durationCount(t, "error"); got != 4 {
		t.Errorf("duration histogram error count = %d, want 4", got)
	}
	if got := f.counter(t, "events.handled"); got != 0 {
		t.Errorf("handled counter = %d, want 0", got)
	}
}

func TestRouterHandlesAnEventWhoseRetrySucceeds(t *testing.T) {
	var c calls
	f := newRouterFixture(t, RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
		func(_ context.Context, ev Envelope) error {
			if c.record(ev) < 3 {
				return errors.New("transient")
			}
			return nil
		})
	f.publishEnvelope(t, "post.created")

	await(t, "the handled counter reaches 1", func() bool { return f.counter(t, "events.handled") == 1 })
	if got := f.counter(t, "events.poisoned"); got != 0 {
		t.Errorf("poisoned = %d, want 0", got)
	}
	if c.count() != 3 {
		t.Errorf("handler ran %d times, want 3", c.count())
	}
}

func TestRouterDeadLettersNonRetriableFailuresAfterOneAttempt(t *testing.T) {
	for name, tc := range map[string]struct {
		handlerErr error
		message    func(f *routerFixture) string // publishes, returns the UUID
		reason     string
	}{
		"handler returns Permanent": {
			handlerErr: Permanent(errors.New("post does not exist")),
			reason:     "post does not exist",
		},
		"malformed envelope": {
			message: func(f *routerFixture) string {
				m := message.NewMessage("11111111-2222-7333-8444-555555555555", []byte(`{"type":"post.created"}`))
				f.publish(t, m)
				return m.UUID
			},
			reason: "malformed event envelope",
		},
	} {
		t.Run(name, func(t *testing.T) {
			var c calls
			f := newRouterFixture(t, RetryPolicy{MaxAttempts: 5, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
				func(_ context.Context, ev Envelope) error {
					c.record(ev)
					return tc.handlerErr
				})
			var id string
			if tc.message != nil {
				id = tc.message(f)
			} else {
				id = f.publishEnvelope(t, "post.created").ID
			}
			dl := f.deadLetter(t)
			if dl.UUID != id {
				t.Fatalf("dead letter %s, want %s", dl.UUID, id)
			}
			if got := dl.Metadata.Get(MetadataPoisonAttempts); got != "1" {
				t.Errorf("attempts = %q, want 1", got)
			}
			if got := dl.Metadata.Get(MetadataPoisonReason); !strings.Contains(got, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", got, tc.reason)
			}
			if tc.message == nil && c.count() != 1 {
				t.Errorf("handler ran %d times, want 1", c.count())
			}
		})
	}
}

func TestRouterRetriesAndDeadLettersAPanickingHandler(t *testing.T) {
	var c calls
	f := newRouterFixture(t, RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
		func(_ context.Context, ev Envelope) error {
			c.record(ev)
			panic("nil map write")
		})
	f.publishEnvelope(t, "post.created")

	dl := f.deadLetter(t)
	if got := dl.Metadata.Get(MetadataPoisonAttempts); got != "2" {
		t.Errorf("attempts = %q, want 2", got)
	}
	if got := dl.Metadata.Get(MetadataPoisonReason); !strings.Contains(got, "nil map write") {
		t.Errorf("reason = %q, want the panic value", got)
	}
	if c.count() != 2 {
		t.Errorf("handler ran %d times, want 2", c.count())
	}
}

func TestRouterShutdownDuringRetriesLeavesTheMessageForRedelivery(t *testing.T) {
	var c calls
	f := newRouterFixture(t, RetryPolicy{MaxAttempts: 5, InitialInterval: time.Hour, MaxInterval: time.Hour},
		func(_ context.Context, ev Envelope) error {
			c.record(ev)
			return errors.New("transient")
		})
	f.publishEnvelope(t, "post.created")
	await(t, "the first attempt failed", func() bool { return f.counter(t, "events.failed") == 1 })

	start := time.Now()
	f.stop(t) // Run has returned: every handler in flight has finished.
	if elapsed := time.Since(start); elapsed > waitFor/2 {
		t.Errorf("shutdown took %s, want it to cut the hour-long backoff short", elapsed)
	}
	if got := f.counter(t, "events.poisoned"); got != 0 {
		t.Errorf("poisoned = %d, want 0: a retry cut short by shutdown is not a dead letter", got)
	}
	if got := f.counter(t, "events.handled"); got != 0 {
		t.Errorf("handled = %d, want 0", got)
	}
	if c.count() != 1 {
		t.Errorf("handler ran %d times, want 1", c.count())
	}
}

func TestNewRouterValidatesConfig(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	for name, cfg := range map[string]RouterConfig{
		"no dead-letter publisher":   {},
		"negative attempts":          {DeadLetters: gc, Retry: RetryPolicy{MaxAttempts: -1}},
		"multiplier below 1":         {DeadLetters: gc, Retry: RetryPolicy{Multiplier: 0.5}},
		"max interval below initial": {DeadLetters: gc, Retry: RetryPolicy{InitialInterval: time.Second, MaxInterval: time.Millisecond}},
		"negative close timeout":     {DeadLetters: gc, CloseTimeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewRouter(cfg, nil); err == nil {
				t.Fatal("NewRouter succeeded, want an error")
			}
		})
	}
	r, err := NewRouter(RouterConfig{DeadLetters: gc}, nil)
	if err != nil {
		t.Fatalf("NewRouter with defaults: %v", err)
	}
	if r.retry != (RetryPolicy{MaxAttempts: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: 10 * time.Second, Multiplier: 2}) {
		t.Errorf("default retry policy = %+v", r.retry)
	}
}

func TestAddHandlerRejectsDuplicateNamesAndMissingParts(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	r, err := NewRouter(RouterConfig{DeadLetters: gc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context, Envelope) error { return nil }
	if err := r.AddHandler("a", "posts", gc, ok); err != nil {
		t.Fatalf("first AddHandler: %v", err)
	}
	for name, add := range map[string]func() error{
		"duplicate name": func() error { return r.AddHandler("a", "other", gc, ok) },
		"empty name":     func() error { return r.AddHandler("", "posts", gc, ok) },
		"empty topic":    func() error { return r.AddHandler("b", "", gc, ok) },
		"nil subscriber": func() error { return r.AddHandler("c", "posts", nil, ok) },
		"nil handler":    func() error { return r.AddHandler("d", "posts", gc, nil) },
	} {
		if err := add(); err == nil {
			t.Errorf("%s: AddHandler succeeded, want an error", name)
		}
	}
}

type failingSubscriber struct{}

func (failingSubscriber) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	return nil, errors.New("broker unreachable")
}
func (failingSubscriber) Close() error { return nil }

func TestRouterRunReportsSubscribeFailure(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	r, err := NewRouter(RouterConfig{DeadLetters: gc, CloseTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddHandler("a", "posts", failingSubscriber{}, func(context.Context, Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broker unreachable") {
			t.Fatalf("Run = %v, want the subscribe error", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
}

func TestDecorateWrapsEveryHandlerWithItsName(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	t.Cleanup(func() { _ = gc.Close() })
	var wrapped sync.Map
	r, err := NewRouter(RouterConfig{
		DeadLetters:  gc,
		CloseTimeout: 5 * time.Second,
		Decorate: func(name string, h Handler) Handler {
			return func(ctx context.Context, ev Envelope) error {
				wrapped.Store(name, ev.ID)
				return h(ctx, ev)
			}
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var c calls
	if err := r.AddHandler(testHandler, testTopic, gc, func(_ context.Context, ev Envelope) error {
		c.record(ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-r.Running()

	env, err := New("post.created", "author-1", "test", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := NewMessage(context.Background(), env, testPropagator)
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.Publish(testTopic, msg); err != nil {
		t.Fatal(err)
	}
	await(t, "the handler runs", func() bool { return c.count() == 1 })
	if id, ok := wrapped.Load(testHandler); !ok || id != env.ID {
		t.Fatalf("decorator saw %v for handler %q, want event %s", id, testHandler, env.ID)
	}
}
