package deadletter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/services/deadletter"
	"github.com/piazza-social/piazza/services/deadletter/app"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// These tests run the archive end to end: a handler under events.Router fails, its message
// reaches the dead-letter topic, the archive consumer stores it, and the operator's use cases
// act on it. They run on the embedded bus and SQLite here, on Kafka and PostgreSQL in the
// integration tier. Each test uses topics and consumer groups of its own, so that dead letters
// of other tests sharing a Kafka cluster do not count.

// waitFor bounds every wait; Kafka's consumer-group joins take seconds.
const waitFor = 60 * time.Second

// testEnv is what a test runs on: a bus and a fresh, empty database for the archive.
type testEnv struct {
	bus events.Bus
	db  *database.DB
}

// runSuite runs the end-to-end tests on the environments newEnv makes.
func runSuite(t *testing.T, newEnv func(t *testing.T) testEnv) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"FailedEventIsArchivedThenReplayedToItsTopicAndHandledOnceFixed", testArchiveAndReplay},
		{"ReplayFailingAgainIsANewEntryAndReplayAllSkipsReplayedEntries", testReplayFailsAgain},
		{"RedeliveredDeadLetterIsArchivedOnce", testRedelivery},
		{"ListFiltersByTopicAndPurgeRemovesEntries", testListAndPurge},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newFixture(t, newEnv(t))) })
	}
}

func TestArchiveEndToEndOnTheEmbeddedBus(t *testing.T) {
	runSuite(t, func(t *testing.T) testEnv {
		dir := t.TempDir()
		bus, err := sqlbus.New(t.Context(), sqlbus.Config{Path: filepath.Join(dir, "events.db"), NackResendDelay: 5 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		return testEnv{bus: bus, db: databasetest.Open(t, "sqlite:"+filepath.Join(dir, "deadletter.db"))}
	})
}

type fixture struct {
	bus     events.Bus
	svc     *deadletter.Service
	metrics *sdkmetric.ManualReader
	logs    *syncBuffer
	// offset moves the service's clock forward.
	offset atomic.Int64
	// topic is the test's own topic; other names derive from it.
	topic string
}

// unique returns prefix with a random suffix, in characters Kafka and SQL both accept.
func unique(prefix string) string {
	return prefix + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

func newFixture(t *testing.T, env testEnv) *fixture {
	t.Helper()
	bus, db := env.bus, env.db
	if err := deadletter.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	sub, err := bus.Subscriber(unique(deadletter.ConsumerGroup))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{bus: bus, metrics: sdkmetric.NewManualReader(), logs: &syncBuffer{}, topic: unique("posts")}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc, err = deadletter.New(deadletter.Config{
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.metrics)),
		Now:           func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) },
	}, deadletter.Deps{DB: db, Publisher: bus, Subscriber: sub}, log)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "archive", f.svc.Run, f.svc.Running())
	return f
}

// runInBackground runs run until the test ends, waits for ready, and checks that run returns
// nil once cancelled.
func runInBackground(t *testing.T, name string, run func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		case <-time.After(waitFor):
			t.Errorf("%s: Run did not return after cancellation", name)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s stopped before it was running: %v", name, err)
	case <-time.After(waitFor):
		t.Fatalf("%s not running within %s", name, waitFor)
	}
}

// handler is a consumer of the fixture's topic under events.Router that fails while broken.
type handler struct {
	broken  atomic.Bool
	handled chan events.Envelope
}

const (
	handlerName = "notify_followers"
	maxAttempts = 3
)

func (f *fixture) startHandler(t *testing.T) *handler {
	t.Helper()
	h := &handler{handled: make(chan events.Envelope, 10)}
	h.broken.Store(true)
	r, err := events.NewRouter(events.RouterConfig{
		DeadLetters:  f.bus,
		Retry:        events.RetryPolicy{MaxAttempts: maxAttempts, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
		CloseTimeout: 5 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := f.bus.Subscriber(unique("notifier"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddHandler(handlerName, f.topic, sub, func(_ context.Context, ev events.Envelope) error {
		if h.broken.Load() {
			return errors.New("boom: downstream unavailable")
		}
		h.handled <- ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "router", r.Run, r.Running())
	return h
}

func (h *handler) awaitHandled(t *testing.T, id string) {
	t.Helper()
	for {
		select {
		case ev := <-h.handled:
			if ev.ID == id {
				return
			}
		case <-time.After(waitFor):
			t.Fatalf("event %s not handled within %s", id, waitFor)
		}
	}
}

// publishEvent publishes a post.created event to the fixture's topic and returns its message.
func (f *fixture) publishEvent(t *testing.T) *message.Message {
	t.Helper()
	env, err := events.New("post.created", "author-1", "post-service", map[string]string{"post_id": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.NewMessage(t.Context(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.bus.Publish(f.topic, msg.Copy()); err != nil {
		t.Fatal(err)
	}
	return msg
}

// awaitEntries polls the archive until it holds n entries of topic, newest first.
func (f *fixture) awaitEntries(t *testing.T, topic string, n int) []domain.Entry {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		p, err := f.svc.App().List(t.Context(), app.ListQuery{Topic: topic, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) == n {
			return p.Items
		}
		if len(p.Items) > n || time.Now().After(deadline) {
			t.Fatalf("archive holds %d entries of %s, want %d", len(p.Items), topic, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// depth collects the deadletter.depth gauge: value per topic.
func (f *fixture) depth(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "deadletter.depth" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("topic"))
				out[v.AsString()] = dp.Value
			}
		}
	}
	return out
}

func testArchiveAndReplay(t *testing.T, f *fixture) {
	topic := f.topic
	h := f.startHandler(t)
	msg := f.publishEvent(t)

	e := f.awaitEntries(t, topic, 1)[0]
	if e.MessageID != msg.UUID || e.Topic != topic || e.Handler != handlerName || e.Attempts != maxAttempts {
		t.Errorf("entry: message %s topic %q handler %q attempts %d; want %s %q %q %d",
			e.MessageID, e.Topic, e.Handler, e.Attempts, msg.UUID, topic, handlerName, maxAttempts)
	}
	if !strings.Contains(e.Reason, "boom: downstream unavailable") {
		t.Errorf("reason %q, want the handler's error", e.Reason)
	}
	if e.FirstFailedAt.IsZero() || e.LastFailedAt.Before(e.FirstFailedAt) {
		t.Errorf("failure times first %v last %v, want both, first <= last", e.FirstFailedAt, e.LastFailedAt)
	}
	if !bytes.Equal(e.Payload, msg.Payload) {
		t.Errorf("payload %s, want the original %s", e.Payload, msg.Payload)
	}
	for _, k := range []string{events.MetadataEventType, events.PartitionKey, "traceparent"} {
		if msg.Metadata.Get(k) != "" && e.Metadata[k] != msg.Metadata.Get(k) {
			t.Errorf("metadata %s = %q, want the original %q", k, e.Metadata[k], msg.Metadata.Get(k))
		}
	}
	if got := f.depth(t); got[topic] != 1 {
		t.Errorf("depth before the replay = %v, want %s: 1", got, topic)
	}

	h.broken.Store(false)
	replayed, err := f.svc.App().Replay(t.Context(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.awaitHandled(t, msg.UUID)
	if replayed.ReplayCount != 1 || replayed.ReplayedAt.IsZero() {
		t.Errorf("after the replay: count %d at %v, want 1 and a time", replayed.ReplayCount, replayed.ReplayedAt)
	}
	if got := f.depth(t); got[topic] != 0 {
		t.Errorf("depth after the replay = %v, want %s: 0", got, topic)
	}
	f.logs.requireLine(t, "dead letter archived", e.ID)
	f.logs.requireLine(t, "dead letter replayed", e.ID)
}

func testReplayFailsAgain(t *testing.T, f *fixture) {
	h := f.startHandler(t)
	msg := f.publishEvent(t)
	first := f.awaitEntries(t, f.topic, 1)[0]

	// Still broken: the replayed message fails again and comes back as a second entry.
	if _, err := f.svc.App().Replay(t.Context(), first.ID); err != nil {
		t.Fatal(err)
	}
	entries := f.awaitEntries(t, f.topic, 2)
	second := entries[0]
	if second.ID == first.ID || second.MessageID != msg.UUID || second.Replayed() || !second.LastFailedAt.After(first.LastFailedAt) {
		t.Fatalf("second failure archived as %+v, want a new pending entry of message %s failing later", second, msg.UUID)
	}

	h.broken.Store(false)
	n, err := f.svc.App().ReplayAll(t.Context(), f.topic)
	if err != nil || n != 1 {
		t.Fatalf("ReplayAll replayed %d (%v), want only the entry never replayed", n, err)
	}
	h.awaitHandled(t, msg.UUID)
	for _, want := range []struct {
		id    string
		count int
	}{{first.ID, 1}, {second.ID, 1}} {
		e, err := f.svc.App().Show(t.Context(), want.id)
		if err != nil || e.ReplayCount != want.count {
			t.Errorf("entry %s replayed %d times (%v), want %d", want.id, e.ReplayCount, err, want.count)
		}
	}
	if n, err := f.svc.App().ReplayAll(t.Context(), f.topic); err != nil || n != 0 {
		t.Errorf("ReplayAll with nothing pending replayed %d (%v), want 0", n, err)
	}
}

// deadLetterOf is a dead letter as the router would publish it, for a message of topic.
func deadLetterOf(id, topic, key string, failedAt time.Time) *message.Message {
	m := message.NewMessage(id, []byte(`not an envelope at all`))
	m.Metadata.Set(events.PartitionKey, key)
	m.Metadata.Set(events.MetadataPoisonTopic, topic)
	m.Metadata.Set(events.MetadataPoisonHandler, "h")
	m.Metadata.Set(events.MetadataPoisonReason, "malformed event envelope")
	m.Metadata.Set(events.MetadataPoisonAttempts, "1")
	m.Metadata.Set(events.MetadataPoisonFirstFailure, failedAt.Format(time.RFC3339Nano))
	m.Metadata.Set(events.MetadataPoisonLastFailure, failedAt.Format(time.RFC3339Nano))
	return m
}

func testRedelivery(t *testing.T, f *fixture) {
	now := time.Now().UTC()
	key := unique("k")
	dup := deadLetterOf(uuid.NewString(), f.topic, key, now)
	// One partition key: the bus delivers these in order, so once the last one is archived
	// both copies before it have been through the archive.
	last := deadLetterOf(uuid.NewString(), f.topic, key, now)
	if err := f.bus.Publish(events.DeadLetterTopic, dup.Copy(), dup.Copy(), last); err != nil {
		t.Fatal(err)
	}
	entries := f.awaitEntries(t, f.topic, 2)
	if got := []string{entries[0].MessageID, entries[1].MessageID}; !slices.Equal(got, []string{last.UUID, dup.UUID}) {
		t.Fatalf("archived messages %v, want %s once and then %s", got, dup.UUID, last.UUID)
	}
}

func testListAndPurge(t *testing.T, f *fixture) {
	now := time.Now().UTC()
	postsTopic, usersTopic, key := f.topic, f.topic+"_users", unique("k")
	if err := f.bus.Publish(events.DeadLetterTopic,
		deadLetterOf(uuid.NewString(), postsTopic, key, now),
		deadLetterOf(uuid.NewString(), usersTopic, key, now),
		deadLetterOf(uuid.NewString(), postsTopic, key, now),
	); err != nil {
		t.Fatal(err)
	}
	// In order on one partition: the last one archived means all are.
	f.awaitEntries(t, postsTopic, 2)
	a := f.svc.App()
	list := func(topic string) []domain.Entry {
		t.Helper()
		p, err := a.List(t.Context(), app.ListQuery{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		return p.Items
	}
	posts, users := list(postsTopic), list(usersTopic)
	if len(posts) != 2 || len(users) != 1 || posts[0].Topic != postsTopic || users[0].Topic != usersTopic {
		t.Fatalf("list by topic: %d posts, %d users entries", len(posts), len(users))
	}

	if err := a.Purge(t.Context(), users[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Show(t.Context(), users[0].ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("show of a purged entry: %v, want not found", err)
	}
	if err := a.Purge(t.Context(), users[0].ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("second purge: %v, want not found", err)
	}
	f.logs.requireLine(t, "dead letter purged", users[0].ID)

	if n, err := a.PurgeOlderThan(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("purge older than 1h of fresh entries: %d, %v; want 0", n, err)
	}
	if got := f.depth(t); got[postsTopic] != 2 {
		t.Fatalf("depth = %v, want %s: 2", got, postsTopic)
	}
	// Two hours later everything archived so far is older than an hour (on Kafka that
	// includes the dead letters of other tests this archive consumed).
	f.offset.Store(int64(2 * time.Hour))
	if n, err := a.PurgeOlderThan(t.Context(), time.Hour); err != nil || n < 2 {
		t.Fatalf("purge older than 1h, 2h later: %d, %v; want at least the 2 left", n, err)
	}
	if left := list(postsTopic); len(left) != 0 {
		t.Fatalf("%d entries left after purging all", len(left))
	}
	f.logs.requireLine(t, "dead letters purged", posts[0].ID)
	if got := f.depth(t); got[postsTopic] != 0 || got[usersTopic] != 0 {
		t.Fatalf("depth after purging everything = %v, want 0 for the topics seen", got)
	}
}

func TestReplayOfUnknownEntryIsNotFound(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	if err := deadletter.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	pub := gochannel.NewGoChannel(gochannel.Config{}, nil)
	t.Cleanup(func() { _ = pub.Close() })
	svc, err := deadletter.New(deadletter.Config{}, deadletter.Deps{DB: db, Publisher: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{uuid.NewString(), "not-an-id"} {
		if _, err := svc.App().Replay(t.Context(), id); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("replay %q: %v, want not found", id, err)
		}
	}
}

func TestRunWithoutSubscriberFails(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	svc, err := deadletter.New(deadletter.Config{}, deadletter.Deps{DB: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(t.Context()); err == nil {
		t.Fatal("Run without a subscriber returned nil")
	}
	if _, err := svc.App().ReplayAll(t.Context(), ""); !errors.Is(err, app.ErrNoRepublisher) {
		t.Fatalf("ReplayAll without a publisher: %v, want ErrNoRepublisher", err)
	}
}

// syncBuffer collects JSON log lines from concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// requireLine fails unless a log line has message msg and names entry id (in entry_id or
// entry_ids).
func (b *syncBuffer) requireLine(t *testing.T, msg, id string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for line := range strings.Lines(b.buf.String()) {
		var rec struct {
			Msg      string   `json:"msg"`
			EntryID  string   `json:"entry_id"`
			EntryIDs []string `json:"entry_ids"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && (rec.EntryID == id || slices.Contains(rec.EntryIDs, id)) {
			return
		}
	}
	t.Fatalf("no log line %q naming entry %s in:\n%s", msg, id, b.buf.String())
}
