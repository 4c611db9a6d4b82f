package outbox_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
)

// The embedded mode end to end: a service's SQLite database with the outbox, the forwarder,
// and the SQLite bus in a file of its own, consumed by a subscriber.
func TestEventsReachASubscriberOfTheEmbeddedBus(t *testing.T) {
	ctx := ctxFor(t)
	bus, err := sqlbus.New(ctx, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	sub, err := bus.Subscriber("notification-service")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(ctx, "users")
	if err != nil {
		t.Fatal(err)
	}

	fx := newFixture(t, func(t *testing.T) *database.DB { return databasetest.OpenSQLite(t) }, bus, outbox.ForwarderConfig{PollInterval: time.Hour})
	fx.start(t)
	want := []events.Envelope{newEnvelope(t, "alice", 0), newEnvelope(t, "alice", 1), newEnvelope(t, "alice", 2)}
	if err := fx.ob.InTx(ctx, func(tx *sql.Tx) error { return fx.ob.Add(ctx, tx, "users", want...) }); err != nil {
		t.Fatal(err)
	}
	for i, env := range want {
		select {
		case msg := <-ch:
			got, err := events.Decode(msg)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if got.ID != env.ID {
				t.Fatalf("message %d is event %s, want %s (in order)", i, got.ID, env.ID)
			}
			msg.Ack()
		case <-time.After(waitFor):
			t.Fatalf("event %d did not arrive within %s", i, waitFor)
		}
	}
	await(t, "an empty outbox", func() bool { return fx.pending(t) == 0 })
}

func TestConstructorsValidateTheirConfig(t *testing.T) {
	if _, err := outbox.New(outbox.Config{}); err == nil {
		t.Error("New without DB succeeded")
	}
	db := databasetest.OpenSQLite(t)
	ob, err := outbox.New(outbox.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	for name, cfg := range map[string]outbox.ForwarderConfig{
		"no outbox":        {Publisher: rec.publisher("a")},
		"no publisher":     {Outbox: ob},
		"negative batch":   {Outbox: ob, Publisher: rec.publisher("a"), BatchSize: -1},
		"negative poll":    {Outbox: ob, Publisher: rec.publisher("a"), PollInterval: -time.Second},
		"negative backoff": {Outbox: ob, Publisher: rec.publisher("a"), Backoff: -time.Second},
	} {
		if _, err := outbox.NewForwarder(cfg, nil); err == nil {
			t.Errorf("%s: NewForwarder succeeded", name)
		}
	}
	if err := ob.Add(context.Background(), nil, "users", newEnvelope(t, "a", 0)); err == nil {
		t.Error("Add without a transaction succeeded")
	}
}
