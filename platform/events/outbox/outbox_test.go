package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
)

// The behaviour tests run on SQLite here and on PostgreSQL in outbox_integration_test.go.
func TestOutboxOnSQLite(t *testing.T) {
	runSuite(t, databasetest.Opener(databasetest.SQLiteURL))
}

// runSuite runs the outbox's behaviour tests. open(t) returns a handle on the database of test
// t: a fresh one on the first call for t, further handles (own pools) on the same one after.
func runSuite(t *testing.T, open func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) *database.DB)
	}{
		{"RolledBackEventsAreNeverPublished", testRolledBack},
		{"CommittedEventsArePublishedInOrderAndIntact", testInOrderIntact},
		{"FailingPublisherLosesNothingAndRowsStayUntilPublished", testFailingPublisher},
		{"EventsPublishedBeforeAFailureAreNotPublishedAgain", testNoRepublishAfterPartialFailure},
		{"KickWakesTheForwarderWithoutWaitingForThePoll", testKick},
		{"PollForwardsEventsNobodyKickedFor", testPoll},
		{"MetricsCountForwardedFailedAndPending", testMetrics},
		{"ForwarderStopsCleanlyOnCancel", testStop},
		{"ForwarderStopsDuringBackoff", testStopDuringBackoff},
		{"AddRejectsMalformedEnvelopesAndStoresNothing", testAddValidates},
		{"EachPublishIsAProducerSpanUnderTheRequestAndTheMessageCarriesIt", testSendSpans},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

const waitFor = 30 * time.Second

var propagator = propagation.TraceContext{}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// await polls cond until it holds, failing t after waitFor.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitFor, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// published is one message the recorder accepted.
type published struct {
	topic string
	by    string // the forwarder that published it
	msg   *message.Message
}

// recorder is a message.Publisher that keeps what it accepted and can be told to fail.
type recorder struct {
	mu   sync.Mutex
	got  []published
	fail func(topic string) error // nil: accept everything
}

func (r *recorder) publisher(name string) message.Publisher { return namedPublisher{r, name} }

func (r *recorder) setFail(fail func(topic string) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = fail
}

func (r *recorder) messages() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) uuids() []string {
	var out []string
	for _, p := range r.messages() {
		out = append(out, p.msg.UUID)
	}
	return out
}

// has reports whether every id has been published.
func (r *recorder) has(ids ...string) bool {
	got := r.uuids()
	for _, id := range ids {
		if !slices.Contains(got, id) {
			return false
		}
	}
	return true
}

type namedPublisher struct {
	r    *recorder
	name string
}

func (p namedPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.r.mu.Lock()
	fail := p.r.fail
	p.r.mu.Unlock()
	if fail != nil {
		// Called unlocked: a hook may query the database.
		if err := fail(topic); err != nil {
			return err
		}
	}
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	for _, m := range msgs {
		p.r.got = append(p.r.got, published{topic: topic, by: p.name, msg: m})
	}
	return nil
}

func (p namedPublisher) Close() error { return nil }

// fixture is one replica of a service: its database handle, outbox and forwarder.
type fixture struct {
	db      *database.DB
	ob      *outbox.Outbox
	fwd     *outbox.Forwarder
	metrics *sdkmetric.ManualReader
}

// newFixture opens a handle with open(t), applies the outbox migrations and builds an outbox
// and a forwarder publishing to pub. Unset cfg fields get fast test values.
func newFixture(t *testing.T, open func(t *testing.T) *database.DB, pub message.Publisher, cfg outbox.ForwarderConfig) *fixture {
	t.Helper()
	db := open(t)
	if _, err := database.Migrate(ctxFor(t), db, outbox.Migrations); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ob, err := outbox.New(outbox.Config{DB: db, Propagator: propagator})
	if err != nil {
		t.Fatalf("outbox.New: %v", err)
	}
	reader := sdkmetric.NewManualReader()
	cfg.Outbox, cfg.Publisher = ob, pub
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	fwd, err := outbox.NewForwarder(cfg, nil)
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	return &fixture{db: db, ob: ob, fwd: fwd, metrics: reader}
}

// start runs the forwarder until the returned stop is called (or t ends); stop returns Run's
// error and fails t if Run does not return after cancellation.
func (fx *fixture) start(t *testing.T) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.fwd.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitFor):
				runErr = errors.New("Run did not return after its context was cancelled")
				t.Error(runErr)
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

type testPayload struct {
	N int `json:"n"`
}

func newEnvelope(t *testing.T, aggregate string, n int) events.Envelope {
	t.Helper()
	env, err := events.New("user.followed", aggregate, "user-service", testPayload{N: n})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// commit adds envs to topic in one committed transaction and kicks the forwarder; it returns
// the event ids.
func (fx *fixture) commit(t *testing.T, ctx context.Context, topic string, envs ...events.Envelope) []string {
	t.Helper()
	if err := fx.ob.InTx(ctx, func(tx *sql.Tx) error { return fx.ob.Add(ctx, tx, topic, envs...) }); err != nil {
		t.Fatalf("commit events: %v", err)
	}
	return ids(envs)
}

// commitQuietly is commit without the Kick: only a poll (or a later kick) finds the events.
func (fx *fixture) commitQuietly(t *testing.T, ctx context.Context, topic string, envs ...events.Envelope) []string {
	t.Helper()
	if err := fx.db.InTx(ctx, func(tx *sql.Tx) error { return fx.ob.Add(ctx, tx, topic, envs...) }); err != nil {
		t.Fatalf("commit events: %v", err)
	}
	return ids(envs)
}

func ids(envs []events.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func (fx *fixture) pending(t *testing.T) int64 {
	t.Helper()
	n, err := fx.ob.Pending(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testRolledBack(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{})
	ctx := ctxFor(t)
	fx.start(t)

	rolledBack := newEnvelope(t, "alice", 1)
	boom := errors.New("the state change failed")
	err := fx.ob.InTx(ctx, func(tx *sql.Tx) error {
		if err := fx.ob.Add(ctx, tx, "users", rolledBack); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want the function's error", err)
	}
	// The forwarder publishes in id order, so once a later committed event is out, an earlier
	// row, had it existed, would have been published too.
	later := fx.commit(t, ctx, "users", newEnvelope(t, "alice", 2))
	await(t, "the committed event", func() bool { return rec.has(later...) })
	if got := rec.uuids(); !slices.Equal(got, later) {
		t.Fatalf("published %v, want only the committed event %v (rolled back: %s)", got, later, rolledBack.ID)
	}
	await(t, "an empty outbox", func() bool { return fx.pending(t) == 0 })
}

func testInOrderIntact(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	// A batch smaller than the number of events: order must hold across batches.
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{BatchSize: 4})
	ctx := ctxFor(t)

	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	reqCtx := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	const wantTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	// Several transactions, several events each, two topics interleaved.
	var want []events.Envelope
	var wantTopics []string
	for tx := range 5 {
		envs := []events.Envelope{newEnvelope(t, "user-"+strconv.Itoa(tx), 2*tx), newEnvelope(t, "user-"+strconv.Itoa(tx), 2*tx+1)}
		topic := "users"
		if tx%2 == 1 {
			topic = "audit"
		}
		if err := fx.db.InTx(reqCtx, func(sqlTx *sql.Tx) error { return fx.ob.Add(reqCtx, sqlTx, topic, envs...) }); err != nil {
			t.Fatal(err)
		}
		want = append(want, envs...)
		wantTopics = append(wantTopics, topic, topic)
	}
	fx.start(t)
	await(t, "every event", func() bool { return len(rec.messages()) >= len(want) })
	got := rec.messages()
	if len(got) != len(want) {
		t.Fatalf("published %d messages, want %d", len(got), len(want))
	}
	for i, p := range got {
		env := want[i]
		if p.msg.UUID != env.ID || p.topic != wantTopics[i] {
			t.Fatalf("message %d = %s on %s, want %s on %s (order lost)", i, p.msg.UUID, p.topic, env.ID, wantTopics[i])
		}
		decoded, err := events.Decode(p.msg)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var body testPayload
		if err := decoded.DecodePayload(&body); err != nil || body.N != i || decoded.Type != env.Type ||
			decoded.AggregateID != env.AggregateID || !decoded.OccurredAt.Equal(env.OccurredAt) || string(decoded.Payload) != string(env.Payload) {
			t.Errorf("message %d: envelope %+v, payload %+v (%v); want %+v", i, decoded, body, err, env)
		}
		if got := p.msg.Metadata.Get(events.PartitionKey); got != env.AggregateID {
			t.Errorf("message %d: partition key %q, want %q", i, got, env.AggregateID)
		}
		if got := p.msg.Metadata.Get(events.MetadataEventType); got != env.Type {
			t.Errorf("message %d: event type %q, want %q", i, got, env.Type)
		}
		if got := p.msg.Metadata.Get("traceparent"); got != wantTraceparent {
			t.Errorf("message %d: traceparent %q, want %q", i, got, wantTraceparent)
		}
		if sc := trace.SpanContextFromContext(events.ContextFromMessage(context.Background(), p.msg, propagator)); sc.TraceID() != traceID || sc.SpanID() != spanID {
			t.Errorf("message %d: extracted span context %s/%s, want the request's", i, sc.TraceID(), sc.SpanID())
		}
		if sc := trace.SpanContextFromContext(p.msg.Context()); sc.TraceID() != traceID {
			t.Errorf("message %d: the context handed to the publisher carries trace %s, want %s", i, sc.TraceID(), traceID)
		}
	}
	await(t, "an empty outbox", func() bool { return fx.pending(t) == 0 })
}

func testSendSpans(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{TracerProvider: tp})
	ctx := ctxFor(t)

	// The first publish fails: its retry must be a new send under the same request span.
	var (
		mu    sync.Mutex
		first = true
	)
	rec.setFail(func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			return errors.New("broker down")
		}
		return nil
	})

	reqCtx, request := tp.Tracer("test").Start(ctx, "POST /v1/posts")
	id := fx.commit(t, reqCtx, "users", newEnvelope(t, "alice", 0))[0]
	request.End()
	fx.start(t)
	await(t, "the event", func() bool { return rec.has(id) })

	var sends []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == "send users" {
			sends = append(sends, s)
		}
	}
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2 (the failed publish and its retry)", len(sends))
	}
	for i, s := range sends {
		if s.SpanKind() != trace.SpanKindProducer || s.Parent().SpanID() != request.SpanContext().SpanID() ||
			s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("send %d: kind %v, parent %s in trace %s; want a producer span under the request span %s of trace %s",
				i, s.SpanKind(), s.Parent().SpanID(), s.SpanContext().TraceID(), request.SpanContext().SpanID(), request.SpanContext().TraceID())
		}
	}
	if sends[0].Status().Code != codes.Error || sends[1].Status().Code != codes.Unset {
		t.Errorf("send statuses %v, %v; want the failed one marked", sends[0].Status(), sends[1].Status())
	}
	msg := rec.messages()[0].msg
	sc := trace.SpanContextFromContext(events.ContextFromMessage(context.Background(), msg, propagator))
	if sc.SpanID() != sends[1].SpanContext().SpanID() || sc.TraceID() != request.SpanContext().TraceID() {
		t.Errorf("the message carries span %s of trace %s, want the successful send %s", sc.SpanID(), sc.TraceID(), sends[1].SpanContext().SpanID())
	}
}

func testFailingPublisher(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{})
	ctx := ctxFor(t)
	want := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 0), newEnvelope(t, "b", 1), newEnvelope(t, "c", 2))

	const failures = 4
	var (
		mu              sync.Mutex
		calls           int
		pendingAtFailed []int64
	)
	rec.setFail(func(string) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > failures {
			return nil
		}
		n, err := fx.ob.Pending(ctx)
		if err != nil {
			return fmt.Errorf("count pending: %w", err)
		}
		pendingAtFailed = append(pendingAtFailed, n)
		return errors.New("broker unavailable")
	})
	fx.start(t)
	await(t, "every event after the failures", func() bool { return rec.has(want...) })
	if got := rec.uuids(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v once each in order", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(pendingAtFailed, []int64{3, 3, 3, 3}) {
		t.Errorf("rows pending at each failed publish = %v, want all 3 kept every time", pendingAtFailed)
	}
	await(t, "the published rows to be deleted", func() bool { return fx.pending(t) == 0 })
}

func testNoRepublishAfterPartialFailure(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{})
	ctx := ctxFor(t)
	// One round reads all four rows; the "audit" run fails twice after the "users" run
	// succeeded.
	first := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 0), newEnvelope(t, "a", 1))
	second := fx.commitQuietly(t, ctx, "audit", newEnvelope(t, "a", 2))
	third := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 3))
	var (
		mu        sync.Mutex
		remaining = 2
	)
	rec.setFail(func(topic string) error {
		mu.Lock()
		defer mu.Unlock()
		if topic == "audit" && remaining > 0 {
			remaining--
			return errors.New("topic audit unavailable")
		}
		return nil
	})
	fx.start(t)
	want := slices.Concat(first, second, third)
	await(t, "every event", func() bool { return rec.has(want...) })
	if got := rec.uuids(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v: events out before the failure must not go out again, nor later ones overtake", got, want)
	}
}

func testKick(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	// An hour-long poll: within the test only a Kick can start a round after the first.
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: time.Hour})
	ctx := ctxFor(t)
	// An event waiting at start-up goes out in the first round; once it is out, that round
	// has read the table and the forwarder can only be woken.
	before := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 0))
	fx.start(t)
	await(t, "the event waiting at start-up", func() bool { return rec.has(before...) })

	viaInTx := fx.commit(t, ctx, "users", newEnvelope(t, "a", 1))
	await(t, "the event committed through Outbox.InTx", func() bool { return rec.has(viaInTx...) })

	explicit := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 2))
	fx.ob.Kick()
	await(t, "the event announced by Kick", func() bool { return rec.has(explicit...) })
}

func testPoll(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: 10 * time.Millisecond})
	ctx := ctxFor(t)
	before := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 0))
	fx.start(t)
	await(t, "the event waiting at start-up", func() bool { return rec.has(before...) })
	// Committed by someone who never kicks (another replica, a restart): the poll finds it.
	quiet := fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 1))
	await(t, "the unannounced event", func() bool { return rec.has(quiet...) })
}

func testMetrics(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	broken := errors.New("broker unavailable")
	rec.setFail(func(string) error { return broken })
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{})
	ctx := ctxFor(t)
	fx.commitQuietly(t, ctx, "users", newEnvelope(t, "a", 0), newEnvelope(t, "a", 1), newEnvelope(t, "a", 2))
	fx.start(t)

	await(t, "publish errors to be counted", func() bool { return counter(t, fx.metrics, "outbox.publish_errors", "users") >= 2 })
	if got := gauge(t, fx.metrics, "outbox.backlog"); got != 3 {
		t.Errorf("backlog = %d while publishing fails, want 3", got)
	}
	if got := gauge(t, fx.metrics, "outbox.leader"); got != 1 {
		t.Errorf("leader = %d for the only forwarder, want 1", got)
	}

	rec.setFail(nil)
	await(t, "the backlog to drain", func() bool { return gauge(t, fx.metrics, "outbox.backlog") == 0 })
	if got := counter(t, fx.metrics, "outbox.forwarded", "users"); got != 3 {
		t.Errorf("forwarded = %d, want 3", got)
	}
}

// collect reads the current metrics of reader.
func collect(t *testing.T, reader *sdkmetric.ManualReader) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}

func counter(t *testing.T, reader *sdkmetric.ManualReader, name, topic string) int64 {
	t.Helper()
	for _, m := range collect(t, reader) {
		if m.Name != name {
			continue
		}
		sum, ok := m.Data.(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s is %T, want an int64 sum", name, m.Data)
		}
		for _, dp := range sum.DataPoints {
			if v, _ := dp.Attributes.Value("topic"); v.AsString() == topic {
				return dp.Value
			}
		}
	}
	return 0
}

// gauge returns the value of the gauge name, or -1 while it is not reported (before Run
// registered its callback).
func gauge(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	for _, m := range collect(t, reader) {
		if m.Name != name {
			continue
		}
		g, ok := m.Data.(metricdata.Gauge[int64])
		if !ok || len(g.DataPoints) != 1 {
			t.Fatalf("%s = %#v, want one int64 gauge point", name, m.Data)
		}
		return g.DataPoints[0].Value
	}
	return -1
}

func testStop(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: time.Hour})
	ctx := ctxFor(t)
	stop := fx.start(t)
	ids := fx.commit(t, ctx, "users", newEnvelope(t, "a", 0))
	await(t, "the event", func() bool { return rec.has(ids...) })
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	// Stopped means stopped: a later event stays in the outbox for the next run.
	later := fx.commit(t, ctx, "users", newEnvelope(t, "a", 1))
	if got := fx.pending(t); got != 1 {
		t.Fatalf("pending after stop = %d, want 1", got)
	}
	if fx.db.Dialect() == database.Postgres {
		await(t, "the forwarding lock to be released", func() bool { return advisoryLocks(t, fx.db) == 0 })
	}
	// A new run (a restart) forwards it.
	fx.start(t)
	await(t, "the event left for the next run", func() bool { return rec.has(later...) })
}

func testStopDuringBackoff(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	attempted := make(chan struct{}, 1)
	rec.setFail(func(string) error {
		select {
		case attempted <- struct{}{}:
		default:
		}
		return errors.New("broker unavailable")
	})
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{Backoff: time.Hour, MaxBackoff: time.Hour})
	fx.commitQuietly(t, ctxFor(t), "users", newEnvelope(t, "a", 0))
	stop := fx.start(t)
	select {
	case <-attempted:
	case <-time.After(waitFor):
		t.Fatal("no publish attempt")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if got := fx.pending(t); got != 1 {
		t.Errorf("pending = %d, want the unpublished event kept", got)
	}
}

func testAddValidates(t *testing.T, open func(t *testing.T) *database.DB) {
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{})
	ctx := ctxFor(t)
	good := newEnvelope(t, "a", 0)
	bad := newEnvelope(t, "a", 1)
	bad.AggregateID = ""
	err := fx.db.InTx(ctx, func(tx *sql.Tx) error {
		addErr := fx.ob.Add(ctx, tx, "users", good, bad)
		// Were Add to store the good one before rejecting the bad one, a caller ignoring the
		// error would commit half the events.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM outbox_messages`).Scan(&n); err != nil || n != 0 {
			t.Errorf("rows stored by the failed Add: %d (%v)", n, err)
		}
		return addErr
	})
	if !errors.Is(err, events.ErrMalformedEnvelope) {
		t.Fatalf("Add with a malformed envelope = %v, want ErrMalformedEnvelope", err)
	}
	if err := fx.db.InTx(ctx, func(tx *sql.Tx) error { return fx.ob.Add(ctx, tx, "", good) }); err == nil {
		t.Error("Add with an empty topic succeeded")
	}
	if got := fx.pending(t); got != 0 {
		t.Errorf("pending = %d, want 0", got)
	}
}

// advisoryLocks counts the advisory locks held in db's database (PostgreSQL).
func advisoryLocks(t *testing.T, db *database.DB) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctxFor(t), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
