package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/presence/adapters"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/domain"
)

var t0 = time.Date(2031, 3, 14, 15, 0, 0, 0, time.UTC)

const ttl = time.Minute

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock
	live  *presence.Memory
	app   *app.Application
	store *adapters.Store
}

// newFixture runs the application on its real adapters: the SQL store on SQLite and the
// in-memory presence store, both on a fake clock.
func newFixture(t *testing.T, cfg app.Config) *fixture {
	t.Helper()
	ctx := t.Context()
	db := databasetest.OpenSQLite(t)
	if _, err := database.Migrate(ctx, db, adapters.Migrations); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: t0}
	live, err := presence.NewMemory(presence.MemoryConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PresenceTTL, cfg.Now = ttl, clk.Now
	store := adapters.NewStore(db)
	a, err := app.New(cfg, app.Deps{Store: store, Presence: live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, clk: clk, live: live, app: a, store: store}
}

func conn(user, id string) presence.Connection {
	return presence.Connection{UserID: user, ConnectionID: id, InstanceID: "gw-1"}
}

// connect does what a gateway does when a connection opens: register it, then publish the
// event, which the service records.
func (f *fixture) connect(c presence.Connection) {
	f.t.Helper()
	if _, err := f.live.Register(f.ctx, c, ttl); err != nil {
		f.t.Fatal(err)
	}
	f.record(f.app.RecordConnected, c)
}

func (f *fixture) disconnect(c presence.Connection) {
	f.t.Helper()
	if _, err := f.live.Unregister(f.ctx, c); err != nil {
		f.t.Fatal(err)
	}
	f.record(f.app.RecordDisconnected, c)
}

func (f *fixture) record(h app.Handler[domain.Event, app.None], c presence.Connection) {
	f.t.Helper()
	ev := domain.Event{UserID: c.UserID, ConnectionID: c.ConnectionID, InstanceID: c.InstanceID, At: f.clk.Now()}
	if _, err := h.Handle(f.ctx, ev); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) presence(user string) app.Presence {
	f.t.Helper()
	p, err := f.app.GetPresence.Handle(f.ctx, app.GetPresence{UserID: user})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) sessions(user string) map[string]domain.Session {
	f.t.Helper()
	p, err := f.app.ListSessions.Handle(f.ctx, app.ListSessions{UserID: user, Limit: domain.MaxPageSize})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]domain.Session{}
	for _, s := range p.Sessions {
		out[s.ConnectionID] = s
	}
	return out
}

func TestPresenceIsOnlineNowAndLastSeenAtTheLatestEnd(t *testing.T) {
	f := newFixture(t, app.Config{})
	if p := f.presence("alice"); p.Online || !p.LastSeenAt.IsZero() {
		t.Fatalf("never-seen user: %+v, want offline with no last seen", p)
	}
	laptop, phone := conn("alice", "laptop"), conn("alice", "phone")
	f.connect(laptop)
	f.clk.Advance(10 * time.Second)
	f.connect(phone)
	f.clk.Advance(10 * time.Second)
	if p := f.presence("alice"); !p.Online || !p.LastSeenAt.Equal(f.clk.Now()) {
		t.Fatalf("online user: %+v, want online, seen now (%s)", p, f.clk.Now())
	}
	f.disconnect(phone)
	f.clk.Advance(10 * time.Second)
	f.disconnect(laptop)
	left := f.clk.Now()
	f.clk.Advance(time.Hour)
	if p := f.presence("alice"); p.Online || !p.LastSeenAt.Equal(left) {
		t.Fatalf("after the last disconnect: %+v, want offline, last seen %s", p, left)
	}
}

func TestPresenceOfAnUnreportedEndIsEstimated(t *testing.T) {
	f := newFixture(t, app.Config{})
	crashed := conn("bob", "c1")
	f.connect(crashed)
	f.clk.Advance(10 * time.Minute) // heartbeats stopped at once (the gateway crashed)
	// The session is still open in the history; its connection expired ttl after t0.
	p := f.presence("bob")
	if want := f.clk.Now().Add(-ttl); p.Online || !p.LastSeenAt.Equal(want) {
		t.Fatalf("presence = %+v, want offline, last seen now - ttl = %s", p, want)
	}
}

func TestSweepClosesOnlyOldSessionsWhoseConnectionIsGone(t *testing.T) {
	f := newFixture(t, app.Config{SweepBatch: 2}) // several batches
	var crashed []presence.Connection
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		c := conn("carol", "crashed-"+id)
		f.connect(c)
		crashed = append(crashed, c)
	}
	alive := conn("carol", "alive")
	f.connect(alive)
	// The crashed gateway stops renewing; the live one renews every 20 s.
	for range 15 {
		f.clk.Advance(20 * time.Second)
		if err := f.live.Refresh(f.ctx, alive, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// Younger than the grace: left alone even though its connection is not live (its
	// registration may still be on its way).
	young := conn("carol", "young")
	f.record(f.app.RecordConnected, young)

	closed, err := f.app.CloseEndedSessions.Handle(f.ctx, app.None{})
	if err != nil || closed != int64(len(crashed)) {
		t.Fatalf("CloseEndedSessions = %d, %v; want the %d crashed sessions", closed, err, len(crashed))
	}
	sessions := f.sessions("carol")
	end := f.clk.Now().Add(-ttl)
	for _, c := range crashed {
		if s := sessions[c.ConnectionID]; !s.DisconnectedAt.Equal(end) {
			t.Errorf("crashed session %+v: want ended at now - ttl = %s", s, end)
		}
	}
	for _, id := range []string{"alive", "young"} {
		if s := sessions[id]; !s.Open() {
			t.Errorf("session %+v was closed, want open", s)
		}
	}
	if again, err := f.app.CloseEndedSessions.Handle(f.ctx, app.None{}); err != nil || again != 0 {
		t.Fatalf("second sweep closed %d, %v; want nothing left to close", again, err)
	}

	// The late disconnect of a swept session replaces the estimate.
	f.record(f.app.RecordDisconnected, crashed[0])
	if s := f.sessions("carol")[crashed[0].ConnectionID]; !s.DisconnectedAt.Equal(f.clk.Now()) {
		t.Fatalf("after the late disconnect: %+v, want ended now", s)
	}
}

func TestSweepNeverEndsASessionBeforeItBegan(t *testing.T) {
	f := newFixture(t, app.Config{SweepGrace: time.Second})
	c := conn("dave", "short")
	f.connect(c)
	if _, err := f.live.Unregister(f.ctx, c); err != nil { // gone, its disconnect event lost
		t.Fatal(err)
	}
	f.clk.Advance(2 * time.Second)
	if _, err := f.app.CloseEndedSessions.Handle(f.ctx, app.None{}); err != nil {
		t.Fatal(err)
	}
	if s := f.sessions("dave")["short"]; !s.DisconnectedAt.Equal(t0) {
		t.Fatalf("session %+v: want ended at its start %s (now - ttl is earlier)", s, t0)
	}
}

func TestPurgeDeletesSessionsEndedBeforeTheRetention(t *testing.T) {
	f := newFixture(t, app.Config{Retention: 24 * time.Hour, PurgeBatch: 2})
	for _, id := range []string{"1", "2", "3"} {
		c := conn("erin", "old-"+id)
		f.connect(c)
		f.disconnect(c)
	}
	f.clk.Advance(25 * time.Hour)
	recent := conn("erin", "recent")
	f.connect(recent)
	f.disconnect(recent)
	n, err := f.app.PurgeHistory.Handle(f.ctx, app.None{})
	if err != nil || n != 3 {
		t.Fatalf("PurgeHistory = %d, %v; want 3", n, err)
	}
	if got := f.sessions("erin"); len(got) != 1 || got["recent"].ConnectionID == "" {
		t.Fatalf("left %v, want only the recent session", got)
	}
}

func TestNegativeRetentionKeepsHistoryForever(t *testing.T) {
	f := newFixture(t, app.Config{Retention: -1})
	c := conn("frank", "old")
	f.connect(c)
	f.disconnect(c)
	f.clk.Advance(100 * 365 * 24 * time.Hour)
	if n, err := f.app.PurgeHistory.Handle(f.ctx, app.None{}); err != nil || n != 0 {
		t.Fatalf("PurgeHistory = %d, %v; want nothing purged", n, err)
	}
}

func TestInvalidInputIsValidationFailedWithFieldPointers(t *testing.T) {
	f := newFixture(t, app.Config{})
	tests := []struct {
		name   string
		call   func() error
		fields []string
	}{
		{"presence without user", func() error {
			_, err := f.app.GetPresence.Handle(f.ctx, app.GetPresence{})
			return err
		}, []string{"/user_id"}},
		{"sessions with everything wrong", func() error {
			_, err := f.app.ListSessions.Handle(f.ctx, app.ListSessions{Cursor: "%%%", Limit: 101})
			return err
		}, []string{"/user_id", "/limit", "/cursor"}},
		{"negative limit", func() error {
			_, err := f.app.ListSessions.Handle(f.ctx, app.ListSessions{UserID: "u", Limit: -1})
			return err
		}, []string{"/limit"}},
		{"incomplete event", func() error {
			_, err := f.app.RecordConnected.Handle(f.ctx, domain.Event{UserID: "u"})
			return err
		}, []string{"/connection_id", "/instance_id", "/at"}},
		{"oversized id", func() error {
			_, err := f.app.RecordDisconnected.Handle(f.ctx, domain.Event{UserID: string(make([]byte, 129)), ConnectionID: "c", InstanceID: "i", At: t0})
			return err
		}, []string{"/user_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			e, ok := errors.AsType[*errs.Error](err)
			if !ok || e.Code != errs.ValidationFailed {
				t.Fatalf("error = %v, want validation_failed", err)
			}
			var got []string
			for _, fv := range e.Fields {
				got = append(got, fv.Pointer)
			}
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
}

func TestSessionsPageWithTheirCursor(t *testing.T) {
	f := newFixture(t, app.Config{})
	for _, id := range []string{"1", "2", "3"} {
		f.connect(conn("grace", id))
		f.clk.Advance(time.Second)
	}
	var got []string
	cursor := ""
	for {
		p, err := f.app.ListSessions.Handle(f.ctx, app.ListSessions{UserID: "grace", Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Sessions {
			got = append(got, s.ConnectionID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if want := []string{"3", "2", "1"}; !slices.Equal(got, want) {
		t.Fatalf("sessions = %v, want newest first %v", got, want)
	}
}

func TestNewRejectsMissingDepsAndNegativeSettings(t *testing.T) {
	live, _ := presence.NewMemory(presence.MemoryConfig{})
	store := adapters.NewStore(databasetest.OpenSQLite(t))
	for name, tc := range map[string]struct {
		cfg  app.Config
		deps app.Deps
	}{
		"no store":       {deps: app.Deps{Presence: live}},
		"no presence":    {deps: app.Deps{Store: store}},
		"negative ttl":   {cfg: app.Config{PresenceTTL: -1}, deps: app.Deps{Store: store, Presence: live}},
		"negative batch": {cfg: app.Config{SweepBatch: -1}, deps: app.Deps{Store: store, Presence: live}},
		"negative grace": {cfg: app.Config{SweepGrace: -1}, deps: app.Deps{Store: store, Presence: live}},
		"negative purge": {cfg: app.Config{PurgeBatch: -1}, deps: app.Deps{Store: store, Presence: live}},
	} {
		if _, err := app.New(tc.cfg, tc.deps, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
