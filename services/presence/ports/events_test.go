package ports_test

import (
	"testing"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	presencestore "github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/presence/adapters"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/ports"
)

func newHandler(t *testing.T) (events.Handler, *database.DB) {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if _, err := database.Migrate(t.Context(), db, adapters.Migrations); err != nil {
		t.Fatal(err)
	}
	live, err := presencestore.NewMemory(presencestore.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Config{}, app.Deps{Store: adapters.NewStore(db), Presence: live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ports.EventHandler(a), db
}

func envelope(t *testing.T, eventType string, payload any) events.Envelope {
	t.Helper()
	env, err := events.New(eventType, "alice", "gateway", payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEventHandlerSortsFailuresIntoPermanentAndRetriable(t *testing.T) {
	h, db := newHandler(t)
	ok := eventsv1.PresencePayload{UserID: "alice", ConnectionID: "c1", InstanceID: "gw-1", At: t0}
	tests := []struct {
		name      string
		env       events.Envelope
		permanent bool
	}{
		{"incomplete payload", envelope(t, eventsv1.PresenceDisconnected, eventsv1.PresencePayload{UserID: "alice"}), true},
		{"payload of another shape", envelope(t, eventsv1.PresenceConnected, []int{1, 2}), true},
	}
	for _, tc := range tests {
		if err := h(t.Context(), tc.env); err == nil || events.IsPermanent(err) != tc.permanent {
			t.Errorf("%s: error %v, want permanent = %v", tc.name, err, tc.permanent)
		}
	}
	if err := h(t.Context(), envelope(t, "presence.typing", map[string]string{"x": "y"})); err != nil {
		t.Errorf("an event type the service does not know: %v, want it acked and ignored", err)
	}
	if err := h(t.Context(), envelope(t, eventsv1.PresenceConnected, ok)); err != nil {
		t.Fatalf("a valid connect: %v", err)
	}
	// A store failure may pass: it is retried, not dead-lettered.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h(t.Context(), envelope(t, eventsv1.PresenceConnected, ok)); err == nil || events.IsPermanent(err) {
		t.Errorf("with the database down: %v, want a retriable error", err)
	}
}
