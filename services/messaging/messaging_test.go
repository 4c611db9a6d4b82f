package messaging_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/services/messaging"
	"github.com/piazza-social/piazza/services/messaging/adapters/storetest"
	"github.com/piazza-social/piazza/services/messaging/app"
)

// publisher records what the service's forwarder publishes.
type publisher struct {
	mu   sync.Mutex
	msgs map[string][]*message.Message
}

func newPublisher() *publisher { return &publisher{msgs: map[string][]*message.Message{}} }

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs[topic] = append(p.msgs[topic], msgs...)
	return nil
}

func (p *publisher) Close() error { return nil }

func (p *publisher) published(topic string) []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs[topic])
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs svc.Run until the test ends.
func run(t *testing.T, svc *messaging.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func TestNewRefusesMissingOrAmbiguousDependencies(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	for name, deps := range map[string]messaging.Deps{
		"no store":     {Publisher: newPublisher()},
		"no publisher": {DB: db},
	} {
		if _, err := messaging.New(messaging.Config{}, deps, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestMigrateIsRepeatableAndBringsTheOutboxTable(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	for range 2 {
		if err := messaging.Migrate(t.Context(), db); err != nil {
			t.Fatal(err)
		}
	}
	for _, set := range []database.MigrationSet{messaging.Migrations, outbox.Migrations} {
		if st, err := database.Status(t.Context(), db, set); err != nil || !st.UpToDate() {
			t.Errorf("%s: %+v, %v", set.Name, st, err)
		}
	}
}

// Embedded mode end to end: events leave through the platform's outbox, on topic "messages",
// keyed by the conversation, in sending order; an idempotent retry emits nothing.
func TestEventsLeaveThroughThePlatformOutboxKeyedByTheConversation(t *testing.T) {
	ctx := t.Context()
	db := databasetest.OpenSQLite(t)
	if err := messaging.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher()
	svc, err := messaging.New(messaging.Config{}, messaging.Deps{DB: db, Publisher: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	checkEventFlow(t, svc, func() []*message.Message { return pub.published(eventsv1.TopicMessages) })
}

// checkEventFlow sends through svc and checks what reaches the bus (published returns it).
func checkEventFlow(t *testing.T, svc *messaging.Service, published func() []*message.Message) {
	t.Helper()
	ctx := t.Context()
	a := svc.App()
	alice, bob, carol := storetest.NewUserID(), storetest.NewUserID(), storetest.NewUserID()
	c, err := a.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: alice, ParticipantIDs: []string{bob, carol}})
	if err != nil {
		t.Fatal(err)
	}
	conv := c.Value.ID
	send := func(from, text, key string) app.Created[string] {
		t.Helper()
		r, err := a.SendMessage.Handle(ctx, app.SendMessage{CallerID: from, ConversationID: conv, Text: text, ClientMsgID: key})
		if err != nil {
			t.Fatal(err)
		}
		return app.Created[string]{Value: r.Value.ID, Created: r.Created}
	}
	first := send(alice, "one", "k1")
	if retry := send(alice, "one", "k1"); retry.Created || retry.Value != first.Value {
		t.Fatalf("retry %+v, want the first message %s", retry, first.Value)
	}
	second := send(bob, "two", "k1") // another sender's k1
	// Events go out in order, so once the second is out, a retry's event would be too.
	waitFor(t, "two events", func() bool { return len(published()) >= 2 })
	msgs := published()
	if len(msgs) != 2 {
		t.Fatalf("%d events published, want 2 (the retry emits nothing)", len(msgs))
	}
	for i, want := range []string{first.Value, second.Value} {
		env, err := events.Decode(msgs[i])
		if err != nil {
			t.Fatal(err)
		}
		var p eventsv1.MessageSentPayload
		if err := env.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		if env.Type != eventsv1.MessageSent || env.AggregateID != conv || msgs[i].Metadata.Get(events.PartitionKey) != conv ||
			p.MessageID != want || len(p.ParticipantIDs) != 3 {
			t.Errorf("event %d: %+v, payload %+v, metadata %v", i, env, p, msgs[i].Metadata)
		}
	}
}

// A send wakes the forwarder of its own process: with an hour between polls, each event still
// goes out without waiting for a poll. The first send is published by the forwarder's first
// round or by its wake-up; the second is stored after that round, so only a wake-up can
// publish it before the poll an hour later.
func TestASendWakesTheForwarderOfItsProcessWithoutWaitingForAPoll(t *testing.T) {
	ctx := t.Context()
	db := databasetest.OpenSQLite(t)
	if err := messaging.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher()
	svc, err := messaging.New(messaging.Config{ForwarderPollInterval: time.Hour}, messaging.Deps{DB: db, Publisher: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	checkWakeUp(t, svc, func() []*message.Message { return pub.published(eventsv1.TopicMessages) })
}

// checkWakeUp sends two messages through svc, awaiting each one's event before the next send.
func checkWakeUp(t *testing.T, svc *messaging.Service, published func() []*message.Message) {
	t.Helper()
	ctx := t.Context()
	a := svc.App()
	alice, bob := storetest.NewUserID(), storetest.NewUserID()
	c, err := a.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: alice, ParticipantIDs: []string{bob}})
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"first", "second"} {
		if _, err := a.SendMessage.Handle(ctx, app.SendMessage{CallerID: alice, ConversationID: c.Value.ID, Text: key, ClientMsgID: key}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the "+key+" event", func() bool { return len(published()) == i+1 })
	}
}
