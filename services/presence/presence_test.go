package presence_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	presencestore "github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/presence"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/domain"
)

var t0 = time.Date(2031, 3, 14, 15, 0, 0, 0, time.UTC)

const patience = 30 * time.Second

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func newService(t *testing.T, cfg presence.Config, live app.PresenceStore) *presence.Service {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if err := presence.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	svc, err := presence.New(cfg, presence.Deps{DB: db, Presence: live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func newMemoryPresence(t *testing.T) *presencestore.Memory {
	t.Helper()
	m, err := presencestore.NewMemory(presencestore.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sessions(t *testing.T, svc *presence.Service, user string) map[string]domain.Session {
	t.Helper()
	p, err := svc.App().ListSessions.Handle(t.Context(), app.ListSessions{UserID: user, Limit: domain.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]domain.Session{}
	for _, s := range p.Sessions {
		out[s.ConnectionID] = s
	}
	return out
}

// await polls cond until it holds, failing after patience.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %s", what, patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func presenceMessage(t *testing.T, eventType string, p eventsv1.PresencePayload) *message.Message {
	t.Helper()
	env, err := events.New(eventType, p.UserID, "gateway", p)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.NewMessage(t.Context(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestPresenceEventsThroughTheRouterBuildTheHistory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, err := sqlbus.New(ctx, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	svc := newService(t, presence.Config{}, newMemoryPresence(t))

	router, err := events.NewRouter(events.RouterConfig{
		DeadLetters: bus,
		Retry:       events.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.AddHandlers(router, bus); err != nil {
		t.Fatal(err)
	}
	dlqSub, err := bus.Subscriber("test-dead-letters")
	if err != nil {
		t.Fatal(err)
	}
	deadLetters, err := dlqSub.Subscribe(ctx, events.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	select {
	case <-router.Running():
	case <-time.After(patience):
		t.Fatal("router not running")
	}

	c1 := eventsv1.PresencePayload{UserID: "alice", ConnectionID: "c1", InstanceID: "gw-1"}
	c2 := eventsv1.PresencePayload{UserID: "alice", ConnectionID: "c2", InstanceID: "gw-2", At: t0.Add(time.Hour)}
	disconnect1, connect1 := c1, c1
	disconnect1.At, connect1.At = t0.Add(time.Minute), t0
	connected1 := presenceMessage(t, eventsv1.PresenceConnected, connect1)
	redelivered := connected1.Copy()
	malformed := presenceMessage(t, eventsv1.PresenceConnected, eventsv1.PresencePayload{UserID: "alice", At: t0})
	other, err := events.New("presence.typing", "alice", "gateway", map[string]string{"user_id": "alice"})
	if err != nil {
		t.Fatal(err)
	}
	otherMsg, err := events.NewMessage(ctx, other, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The disconnect overtakes its connect, which is then delivered twice.
	msgs := []*message.Message{
		presenceMessage(t, eventsv1.PresenceDisconnected, disconnect1),
		connected1,
		redelivered,
		malformed,
		otherMsg,
		presenceMessage(t, eventsv1.PresenceConnected, c2),
	}
	if err := bus.Publish(eventsv1.TopicPresence, msgs...); err != nil {
		t.Fatal(err)
	}

	await(t, "the history of alice", func() bool {
		s := sessions(t, svc, "alice")
		return len(s) == 2 && s["c1"].ConnectedAt.Equal(t0) && s["c2"].ConnectionID != ""
	})
	s := sessions(t, svc, "alice")
	if got := s["c1"]; got.InstanceID != "gw-1" || !got.DisconnectedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("c1 = %+v, want gw-1 from %s to %s", got, t0, t0.Add(time.Minute))
	}
	if got := s["c2"]; got.InstanceID != "gw-2" || !got.ConnectedAt.Equal(t0.Add(time.Hour)) || !got.Open() {
		t.Errorf("c2 = %+v, want open on gw-2 since %s", got, t0.Add(time.Hour))
	}

	select {
	case dl := <-deadLetters:
		dl.Ack()
		if dl.UUID != malformed.UUID || dl.Metadata.Get(events.MetadataPoisonHandler) != presence.HandlerName ||
			dl.Metadata.Get(events.MetadataPoisonAttempts) != "1" {
			var env events.Envelope
			_ = json.Unmarshal(dl.Payload, &env)
			t.Fatalf("dead letter %s (%s, metadata %v), want the malformed event after one attempt", dl.UUID, env.Type, dl.Metadata)
		}
	case <-time.After(patience):
		t.Fatal("the malformed event was not dead-lettered")
	}
}

func TestRunClosesTheSessionsOfCrashedGatewaysAndStopsOnCancel(t *testing.T) {
	live := newMemoryPresence(t) // the crashed gateway's connection is not (any more) in it
	clk := &clock{now: t0.Add(time.Hour)}
	svc := newService(t, presence.Config{SweepInterval: time.Hour, Now: clk.Now}, live)
	if _, err := svc.App().RecordConnected.Handle(t.Context(), domain.Event{UserID: "bob", ConnectionID: "c1", InstanceID: "gw-crashed", At: t0}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	// Run sweeps at once, not only after the first interval.
	await(t, "the sweep to close the session", func() bool { return !sessions(t, svc, "bob")["c1"].Open() })
	if got := sessions(t, svc, "bob")["c1"].DisconnectedAt; !got.Equal(clk.Now().Add(-presenceTTL)) {
		t.Errorf("closed at %s, want now - the presence TTL (%s)", got, clk.Now().Add(-presenceTTL))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return after cancel")
	}
}

const presenceTTL = app.DefaultPresenceTTL

func TestNewRequiresItsDeps(t *testing.T) {
	if _, err := presence.New(presence.Config{}, presence.Deps{}, nil); err == nil {
		t.Fatal("New without deps succeeded")
	}
}
