//go:build integration

package adapters_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/adapters"
	"github.com/piazza-social/piazza/services/messaging/adapters/storetest"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// testBucket is the bucket size of the tests: an hour, so that messages spread over many
// buckets without dates far apart.
const testBucket = time.Hour

// openCassandra returns a store on a fresh keyspace of t, migrated through cassandra.Migrate
// as the migration job does, and its session.
func openCassandra(t *testing.T, cfg adapters.CassandraConfig) (*adapters.CassandraStore, *gocql.Session) {
	t.Helper()
	hosts, keyspace := cassandratest.NewKeyspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := cassandra.Migrate(ctx, admin, adapters.CassandraMigrations, keyspace, cassandra.MigrateOptions{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	session, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts, Keyspace: keyspace}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(session.Close)
	cfg.Session = session
	if cfg.BucketSize == 0 {
		cfg.BucketSize = testBucket
	}
	st, err := adapters.NewCassandraStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st, session
}

// pending reads pending_events: the events waiting for the forwarder, by shard and position.
func pending(t testing.TB, s *gocql.Session) []storetest.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type row struct {
		shard int
		seq   string
		ev    storetest.Event
	}
	var rows []row
	it := s.Query(`SELECT shard, seq, topic, payload FROM pending_events`).IterContext(ctx)
	var (
		r       row
		payload []byte
	)
	for it.Scan(&r.shard, &r.seq, &r.ev.Topic, &payload) {
		if err := json.Unmarshal(payload, &r.ev.Envelope); err != nil {
			t.Fatalf("pending event payload: %v", err)
		}
		rows = append(rows, r)
		r = row{}
	}
	if err := it.Close(); err != nil {
		t.Fatalf("read pending events: %v", err)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].shard != rows[j].shard {
			return rows[i].shard < rows[j].shard
		}
		return rows[i].seq < rows[j].seq
	})
	out := make([]storetest.Event, len(rows))
	for i, r := range rows {
		out[i] = r.ev
	}
	return out
}

func TestCassandraStoreMeetsTheContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		st, s := openCassandra(t, adapters.CassandraConfig{})
		return storetest.Harness{Store: st, BucketSize: st.BucketSize(), Events: func(t testing.TB) []storetest.Event { return pending(t, s) }}
	})
}

func TestCassandraMigrationsApplyOnceAndAreRepeatable(t *testing.T) {
	hosts, keyspace := cassandratest.NewKeyspace(t)
	ctx := t.Context()
	s, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, want := range []int{1, 0} {
		n, err := cassandra.Migrate(ctx, s, adapters.CassandraMigrations, keyspace, cassandra.MigrateOptions{})
		if err != nil || n != want {
			t.Fatalf("run %d: applied %d, %v; want %d", i+1, n, err, want)
		}
	}
	st, err := cassandra.Status(ctx, s, adapters.CassandraMigrations, keyspace)
	if err != nil || !st.UpToDate() || st.Current != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// A send whose process died between claiming its client id and writing its batch leaves a
// claim without a message. The next send with that client id finds the claim and completes
// the message and its event from it, instead of losing them or storing a second message.
func TestCassandraRetryCompletesASendThatDiedAfterItsClaim(t *testing.T) {
	st, s := openCassandra(t, adapters.CassandraConfig{})
	ctx := t.Context()
	alice, bob := storetest.NewUserID(), storetest.NewUserID()
	t0 := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	ps, _ := domain.Participants(alice, []string{bob})
	conv, _, err := st.CreateConversation(ctx, domain.Conversation{ID: storetest.IDAt(t, t0), ParticipantIDs: ps, CreatedAt: t0, LastActivityAt: t0}, alice)
	if err != nil {
		t.Fatal(err)
	}
	orig := domain.Message{ID: storetest.IDAt(t, t0.Add(time.Second)), ConversationID: conv.ID, SenderID: alice, Text: "lost in flight", ClientMsgID: "k1"}
	orig.CreatedAt, _ = domain.IDTime(orig.ID)
	ev, err := app.MessageSentEvent(orig, ps)
	if err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(ev)
	if err := s.Query(`INSERT INTO message_ids (conversation_id, sender_id, client_msg_id, message_id, text, event) VALUES (?, ?, ?, ?, ?, ?)`,
		conv.ID, alice, "k1", orig.ID, orig.Text, evJSON).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}

	retry := domain.Message{ID: storetest.IDAt(t, t0.Add(time.Minute)), ConversationID: conv.ID, SenderID: alice, Text: "retry", ClientMsgID: "k1"}
	retry.CreatedAt, _ = domain.IDTime(retry.ID)
	got, created, err := st.SendMessage(ctx, retry, app.MessageSentEvent)
	if err != nil || created || got != orig {
		t.Fatalf("retry: %+v, created %v, %v; want the claimed %+v", got, created, err, orig)
	}
	p, err := st.ListMessages(ctx, conv.ID, bob, domain.MessageCursor{}, 10)
	if err != nil || len(p.Messages) != 1 || p.Messages[0] != orig {
		t.Fatalf("history %+v, %v", p.Messages, err)
	}
	if c, err := st.Conversation(ctx, conv.ID, bob); err != nil || c.LastMessage == nil || *c.LastMessage != orig || c.UnreadCount != 1 {
		t.Fatalf("conversation %+v, %v", c, err)
	}
	evs := pending(t, s)
	if len(evs) != 1 || evs[0].Envelope.ID != ev.ID {
		t.Fatalf("pending %+v, want the claimed event %s", evs, ev.ID)
	}
	// And a further retry finds the message complete: nothing more.
	if _, created, err := st.SendMessage(ctx, retry, app.MessageSentEvent); err != nil || created {
		t.Fatalf("second retry: created %v, %v", created, err)
	}
	if evs := pending(t, s); len(evs) != 1 {
		t.Fatalf("%d pending events after the second retry", len(evs))
	}
}

// ------------------------------------------------------------------------------- forwarder

// recorder is a message.Publisher that records what it is given, optionally failing first.
type recorder struct {
	mu    sync.Mutex
	msgs  []*message.Message
	fails int // how many Publish calls fail before the first success
	calls int
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fails > 0 {
		r.fails--
		return errors.New("bus unavailable")
	}
	if topic != eventsv1.TopicMessages {
		return fmt.Errorf("unexpected topic %q", topic)
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) published() []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runForwarder runs f until t ends.
func runForwarder(t *testing.T, f *adapters.CassandraForwarder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("forwarder: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// sendMany sends n messages in each of convs (round robin) as sender, with the trace context of
// ctx, and returns them in sending order.
func sendMany(t *testing.T, ctx context.Context, st *adapters.CassandraStore, sender string, convs []string, n int) []domain.Message {
	t.Helper()
	var ids domain.IDGenerator
	var out []domain.Message
	for i := range n {
		for _, conv := range convs {
			id, err := ids.New(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			at, _ := domain.IDTime(id)
			m := domain.Message{ID: id, ConversationID: conv, SenderID: sender, Text: fmt.Sprintf("m%d", i), ClientMsgID: id, CreatedAt: at}
			if _, created, err := st.SendMessage(ctx, m, app.MessageSentEvent); err != nil || !created {
				t.Fatalf("send: %v, created %v", err, created)
			}
			out = append(out, m)
		}
	}
	return out
}

// checkPublished asserts that msgs are exactly the events of sent, each once, in message order
// per conversation, keyed by the conversation and carrying the sending request's trace.
func checkPublished(t *testing.T, msgs []*message.Message, sent []domain.Message, traceID trace.TraceID) {
	t.Helper()
	byConv := map[string][]string{}
	seen := map[string]bool{}
	prop := propagation.TraceContext{}
	for _, msg := range msgs {
		env, err := events.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		if seen[env.ID] {
			t.Errorf("event %s published twice", env.ID)
		}
		seen[env.ID] = true
		var p eventsv1.MessageSentPayload
		if err := env.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		if msg.Metadata.Get(events.PartitionKey) != p.ConversationID || msg.Metadata.Get(events.MetadataEventType) != eventsv1.MessageSent {
			t.Errorf("metadata %v of message %s", msg.Metadata, p.MessageID)
		}
		if sc := trace.SpanContextFromContext(prop.Extract(context.Background(), events.MetadataCarrier(msg.Metadata))); sc.TraceID() != traceID {
			t.Errorf("message %s carries trace %s, want the sender's %s", p.MessageID, sc.TraceID(), traceID)
		}
		byConv[p.ConversationID] = append(byConv[p.ConversationID], p.MessageID)
	}
	want := map[string][]string{}
	for _, m := range sent {
		want[m.ConversationID] = append(want[m.ConversationID], m.ID)
	}
	for conv, ids := range want {
		if !slices.Equal(byConv[conv], ids) {
			t.Errorf("conversation %s: published %v\nwant %v", conv, byConv[conv], ids)
		}
	}
	if len(msgs) != len(sent) {
		t.Errorf("published %d events for %d messages", len(msgs), len(sent))
	}
}

// tracedContext returns a context holding a sampled remote span, as a traced request would.
func tracedContext(t *testing.T) (context.Context, trace.TraceID) {
	t.Helper()
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled, Remote: true})
	return trace.ContextWithSpanContext(t.Context(), sc), tid
}

func groups(t *testing.T, st *adapters.CassandraStore, owner string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ps, _ := domain.Participants(owner, []string{storetest.NewUserID(), storetest.NewUserID()})
		at := time.Now().UTC().Truncate(time.Millisecond)
		c, _, err := st.CreateConversation(t.Context(), domain.Conversation{ID: storetest.IDAt(t, at), ParticipantIDs: ps, CreatedAt: at, LastActivityAt: at}, owner)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.ID)
	}
	return out
}

func TestForwarderPublishesEveryEventOnceInOrderThenDeletesIt(t *testing.T) {
	st, s := openCassandra(t, adapters.CassandraConfig{Propagator: propagation.TraceContext{}})
	alice := storetest.NewUserID()
	convs := groups(t, st, alice, 4)
	ctx, tid := tracedContext(t)
	sent := sendMany(t, ctx, st, alice, convs, 10)

	// The bus fails at first: nothing is lost or reordered by the retries.
	pub := &recorder{fails: 3}
	f, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{Store: st, Publisher: pub, BatchSize: 7, Backoff: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)
	waitFor(t, "every event to be published", func() bool { return len(pub.published()) >= len(sent) })
	waitFor(t, "pending_events to empty", func() bool { return len(pending(t, s)) == 0 })

	// Events sent while it runs go out too, woken by the store.
	more := sendMany(t, ctx, st, alice, convs[:2], 3)
	waitFor(t, "the later events", func() bool { return len(pub.published()) >= len(sent)+len(more) })
	checkPublished(t, pub.published(), append(sent, more...), tid)
}

func TestOnlyTheLeaseHolderForwardsAndAStandbyTakesOverWhenItStops(t *testing.T) {
	st, _ := openCassandra(t, adapters.CassandraConfig{})
	alice := storetest.NewUserID()
	convs := groups(t, st, alice, 2)
	first, second := &recorder{}, &recorder{}
	f1, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{Store: st, Publisher: first, Owner: "first", PollInterval: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{Store: st, Publisher: second, Owner: "second", PollInterval: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runForwarder(t, f1)
	sent := sendMany(t, t.Context(), st, alice, convs, 3)
	waitFor(t, "the first forwarder to publish", func() bool { return len(first.published()) == len(sent) })
	runForwarder(t, f2) // stands by: the first holds the lease
	sent2 := sendMany(t, t.Context(), st, alice, convs, 3)
	waitFor(t, "the first forwarder to publish more", func() bool { return len(first.published()) == len(sent)+len(sent2) })
	if n := len(second.published()); n != 0 {
		t.Fatalf("the standby published %d events while the lease was held", n)
	}

	stop1() // releases the lease
	sent3 := sendMany(t, t.Context(), st, alice, convs, 3)
	waitFor(t, "the standby to take over", func() bool { return len(second.published()) == len(sent3) })
	if n := len(first.published()); n != len(sent)+len(sent2) {
		t.Errorf("the stopped forwarder published %d events, want %d", n, len(sent)+len(sent2))
	}
}

// A send wakes the forwarder of its own process: with an hour between polls and between lease
// renewals, each event still goes out without waiting for either. The first send is published
// by the forwarder's first round or by its wake-up; the second is stored after that round, so
// only a wake-up can publish it within the hour.
func TestASendWakesTheForwarderOfItsProcessWithoutWaitingForAPoll(t *testing.T) {
	st, _ := openCassandra(t, adapters.CassandraConfig{})
	alice := storetest.NewUserID()
	convs := groups(t, st, alice, 1)
	pub := &recorder{}
	f, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{
		Store: st, Publisher: pub, PollInterval: time.Hour, LeaseTTL: time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)
	sent := sendMany(t, t.Context(), st, alice, convs, 1)
	waitFor(t, "the first event", func() bool { return len(pub.published()) == len(sent) })
	more := sendMany(t, t.Context(), st, alice, convs, 1)
	waitFor(t, "the second event", func() bool { return len(pub.published()) == len(sent)+len(more) })
}

// Another process's sends wake no forwarder here: the forwarder finds their events by reading
// every shard at least every PollInterval, also while this process's own sends keep waking it
// for the shards they wrote.
func TestEventsOfAnotherProcessAreForwardedWhileThisProcessKeepsSending(t *testing.T) {
	st, s := openCassandra(t, adapters.CassandraConfig{})
	other, err := adapters.NewCassandraStore(adapters.CassandraConfig{Session: s, BucketSize: testBucket})
	if err != nil {
		t.Fatal(err)
	}
	alice := storetest.NewUserID()
	ours := groups(t, st, alice, 1)[0]
	theirs := groups(t, st, alice, 1)[0]
	for adapters.ShardOf(theirs) == adapters.ShardOf(ours) {
		theirs = groups(t, st, alice, 1)[0]
	}
	pub := &recorder{}
	f, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{
		Store: st, Publisher: pub, PollInterval: 200 * time.Millisecond, RescanInterval: time.Hour,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, f)

	ctx, stop := context.WithCancel(t.Context())
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		var ids domain.IDGenerator
		for ctx.Err() == nil {
			id, err := ids.New(time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			at, _ := domain.IDTime(id)
			m := domain.Message{ID: id, ConversationID: ours, SenderID: alice, Text: "ours", ClientMsgID: id, CreatedAt: at}
			if _, _, err := st.SendMessage(ctx, m, app.MessageSentEvent); err != nil && ctx.Err() == nil {
				t.Errorf("send: %v", err)
				return
			}
		}
	}()
	defer func() { stop(); <-sending }()
	waitFor(t, "this process's sends to be forwarded", func() bool { return len(pub.published()) > 0 })

	sent := sendMany(t, t.Context(), other, alice, []string{theirs}, 1)
	waitFor(t, "the other process's event", func() bool {
		for _, msg := range pub.published() {
			env, err := events.Decode(msg)
			if err != nil {
				t.Fatal(err)
			}
			var p eventsv1.MessageSentPayload
			if err := env.DecodePayload(&p); err != nil {
				t.Fatal(err)
			}
			if p.MessageID == sent[0].ID {
				return true
			}
		}
		return false
	})
}
