//go:build integration

package outbox_test

import (
	"slices"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/platform/infratest"
)

func postgresOpener() func(t *testing.T) *database.DB {
	return databasetest.Opener(func(t *testing.T) string { return infratest.NewPostgresDatabase(t) })
}

func TestOutboxOnPostgres(t *testing.T) {
	runSuite(t, postgresOpener())
}

// Two replicas of a service share one database: only the holder of the forwarding lock
// forwards, so every event is published once and in order, whichever replica committed it.
func TestTwoForwardersOnOneDatabasePublishEachEventOnceInOrder(t *testing.T) {
	open := postgresOpener()
	rec := &recorder{}
	a := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: 10 * time.Millisecond, BatchSize: 7})
	b := newFixture(t, open, rec.publisher("b"), outbox.ForwarderConfig{PollInterval: 10 * time.Millisecond, BatchSize: 7})
	ctx := ctxFor(t)
	a.start(t)
	b.start(t)

	var want []string
	for i := range 60 {
		replica := a
		if i%2 == 1 {
			replica = b
		}
		want = append(want, replica.commit(t, ctx, "users", newEnvelope(t, "alice", i))...)
	}
	await(t, "every event", func() bool { return rec.has(want...) })
	if got := rec.uuids(); !slices.Equal(got, want) {
		t.Fatalf("published %d messages %v,\nwant %d once each in commit order %v", len(got), got, len(want), want)
	}
	publishers := map[string]bool{}
	for _, p := range rec.messages() {
		publishers[p.by] = true
	}
	if len(publishers) != 1 {
		t.Errorf("events were published by %v, want by the one lock holder", publishers)
	}
	if got := gauge(t, a.metrics, "outbox.leader") + gauge(t, b.metrics, "outbox.leader"); got != 1 {
		t.Errorf("leader gauges add up to %d, want 1", got)
	}
}

func TestStandbyTakesOverWhenTheLeaderStops(t *testing.T) {
	open := postgresOpener()
	rec := &recorder{}
	a := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: 10 * time.Millisecond})
	b := newFixture(t, open, rec.publisher("b"), outbox.ForwarderConfig{PollInterval: 10 * time.Millisecond})
	ctx := ctxFor(t)
	stopA := a.start(t)
	await(t, "a to lead", func() bool { return gauge(t, a.metrics, "outbox.leader") == 1 })
	b.start(t)
	first := a.commit(t, ctx, "users", newEnvelope(t, "alice", 0))
	await(t, "the first event", func() bool { return rec.has(first...) })

	if err := stopA(); err != nil {
		t.Fatalf("stop a: %v", err)
	}
	second := b.commit(t, ctx, "users", newEnvelope(t, "alice", 1))
	await(t, "the event after the leader stopped", func() bool { return rec.has(second...) })
	got := rec.messages()
	if len(got) != 2 || got[0].by != "a" || got[1].by != "b" {
		t.Fatalf("published %+v, want the first event by a and the second by b", got)
	}
}

// If the lock's connection dies, the forwarder stops forwarding, takes the lock again on a new
// connection, and carries on: nothing is lost.
func TestForwarderRecoversWhenItsLockConnectionDies(t *testing.T) {
	open := postgresOpener()
	rec := &recorder{}
	fx := newFixture(t, open, rec.publisher("a"), outbox.ForwarderConfig{PollInterval: time.Hour})
	admin := open(t)
	ctx := ctxFor(t)
	fx.start(t)
	first := fx.commit(t, ctx, "users", newEnvelope(t, "alice", 0))
	await(t, "the first event", func() bool { return rec.has(first...) })

	holder := lockHolder(t, admin)
	var terminated bool
	if err := admin.SQL().QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, holder).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate the lock's backend %d: %v, %v", holder, terminated, err)
	}
	// The next round, woken by the Kick, finds the connection dead.
	second := fx.commit(t, ctx, "users", []events.Envelope{newEnvelope(t, "alice", 1), newEnvelope(t, "alice", 2)}...)
	await(t, "the events committed after the connection died", func() bool { return rec.has(second...) })
	if got := rec.uuids(); !slices.Equal(got, slices.Concat(first, second)) {
		t.Fatalf("published %v, want %v", got, slices.Concat(first, second))
	}
	if now := lockHolder(t, admin); now == holder {
		t.Errorf("the lock is still held by the terminated backend %d", holder)
	}
}

// lockHolder returns the backend pid holding the forwarding lock of db's database.
func lockHolder(t *testing.T, db *database.DB) int {
	t.Helper()
	var pid int
	await(t, "a forwarding lock holder", func() bool {
		err := db.SQL().QueryRowContext(ctxFor(t), `SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND granted
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
		return err == nil
	})
	return pid
}
