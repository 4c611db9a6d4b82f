// Package storetest holds the contract suite of presence-service's SQL store, run on SQLite
// in the unit tier and on PostgreSQL in the integration tier.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/presence/adapters"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// Run runs the store contract. newDB(t) must return a fresh, empty database for t, closed and
// dropped when t ends.
func Run(t *testing.T, newDB func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"ConnectThenDisconnectRecordsOneSession", testConnectDisconnect},
		{"RedeliveredEventsChangeNothing", testRedelivery},
		{"DisconnectBeforeConnectMergesIntoTheSameSession", testOutOfOrder},
		{"RecordedDisconnectReplacesAnEstimatedEnd", testDisconnectAfterEstimate},
		{"EstimateNeverOverwritesARecordedDisconnect", testEstimateAfterDisconnect},
		{"SessionsPageNewestFirstWithoutDuplicatesOrSkipsUnderConcurrentInserts", testList},
		{"ActivityTellsLatestDisconnectAndLatestOpenSession", testActivity},
		{"OpenSessionsArePagedByConnectionAndStartCutoff", testOpenSessions},
		{"PurgeDeletesOnlySessionsEndedBeforeTheCutoff", testPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			if _, err := database.Migrate(ctx, db, adapters.Migrations); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			tc.fn(t, &harness{t: t, ctx: ctx, st: adapters.NewStore(db)})
		})
	}
}

// t0 is the base time of the tests: microsecond precision, as both engines store.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

type harness struct {
	t   *testing.T
	ctx context.Context
	st  *adapters.Store
}

func session(user, conn string, at time.Time) domain.Session {
	return domain.Session{ConnectionID: conn, UserID: user, InstanceID: "gw-1", ConnectedAt: at}
}

func (h *harness) connect(user, conn string, at time.Time) {
	h.t.Helper()
	if err := h.st.RecordConnected(h.ctx, session(user, conn, at)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) disconnect(user, conn string, at time.Time) {
	h.t.Helper()
	s := session(user, conn, time.Time{})
	s.DisconnectedAt = at
	if err := h.st.RecordDisconnected(h.ctx, s); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) all(user string) []domain.Session {
	h.t.Helper()
	p, err := h.st.ListSessions(h.ctx, user, domain.Cursor{}, domain.MaxPageSize)
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Sessions
}

func (h *harness) only(user string) domain.Session {
	h.t.Helper()
	list := h.all(user)
	if len(list) != 1 {
		h.t.Fatalf("%s has %d sessions, want 1: %+v", user, len(list), list)
	}
	return list[0]
}

func expectSession(t *testing.T, got domain.Session, conn string, start, end time.Time) {
	t.Helper()
	if got.ConnectionID != conn || got.InstanceID != "gw-1" || !got.ConnectedAt.Equal(start) || !got.DisconnectedAt.Equal(end) {
		t.Fatalf("session = %+v, want %s from %s to %s", got, conn, start, end)
	}
}

func testConnectDisconnect(t *testing.T, h *harness) {
	h.connect("alice", "c1", t0)
	got := h.only("alice")
	expectSession(t, got, "c1", t0, time.Time{})
	if !got.Open() || got.UserID != "alice" {
		t.Fatalf("session %+v: want open, of alice", got)
	}
	h.disconnect("alice", "c1", t0.Add(time.Hour))
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Hour))
	if other := h.all("bob"); len(other) != 0 {
		t.Fatalf("bob has sessions %+v, want none", other)
	}
}

func testRedelivery(t *testing.T, h *harness) {
	h.connect("alice", "c1", t0)
	h.connect("alice", "c1", t0)
	h.disconnect("alice", "c1", t0.Add(time.Minute))
	h.disconnect("alice", "c1", t0.Add(time.Minute))
	h.connect("alice", "c1", t0) // a connect redelivered after the disconnect
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Minute))
}

func testOutOfOrder(t *testing.T, h *harness) {
	h.disconnect("alice", "c1", t0.Add(time.Minute))
	got := h.only("alice")
	if got.Open() {
		t.Fatalf("a session known only from its disconnect is open: %+v", got)
	}
	h.connect("alice", "c1", t0)
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Minute))
}

func testDisconnectAfterEstimate(t *testing.T, h *harness) {
	h.connect("alice", "c1", t0)
	n, err := h.st.CloseSessions(h.ctx, []domain.End{{ConnectionID: "c1", At: t0.Add(time.Hour)}})
	if err != nil || n != 1 {
		t.Fatalf("CloseSessions = %d, %v; want 1 closed", n, err)
	}
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Hour))
	h.disconnect("alice", "c1", t0.Add(time.Minute))
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Minute))
}

func testEstimateAfterDisconnect(t *testing.T, h *harness) {
	h.connect("alice", "c1", t0)
	h.disconnect("alice", "c1", t0.Add(time.Minute))
	n, err := h.st.CloseSessions(h.ctx, []domain.End{{ConnectionID: "c1", At: t0.Add(time.Hour)}, {ConnectionID: "unknown", At: t0}})
	if err != nil || n != 0 {
		t.Fatalf("CloseSessions = %d, %v; want 0 closed", n, err)
	}
	expectSession(t, h.only("alice"), "c1", t0, t0.Add(time.Minute))
	if n, err := h.st.CloseSessions(h.ctx, nil); err != nil || n != 0 {
		t.Fatalf("CloseSessions(nil) = %d, %v", n, err)
	}
}

func testList(t *testing.T, h *harness) {
	// 25 sessions, several sharing a start time so the connection id breaks ties.
	var want []string
	for i := range 25 {
		conn := fmt.Sprintf("c%02d", i)
		h.connect("alice", conn, t0.Add(time.Duration(i/3)*time.Second))
		want = append(want, conn)
	}
	h.connect("bob", "bob-1", t0.Add(time.Hour))
	slices.Reverse(want) // newest first; ties by connection id descending

	var (
		got []string
		wg  sync.WaitGroup
	)
	// Connections opened while paging are newer than every listed one: they must not shift
	// the pages.
	wg.Go(func() {
		for i := range 20 {
			if err := h.st.RecordConnected(h.ctx, session("alice", fmt.Sprintf("new-%02d", i), t0.Add(time.Hour+time.Duration(i)*time.Second))); err != nil {
				t.Error(err)
			}
		}
	})
	cursor := domain.Cursor{}
	for range 100 {
		p, err := h.st.ListSessions(h.ctx, "alice", cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Sessions {
			if s.UserID != "alice" {
				t.Fatalf("listed %+v in alice's history", s)
			}
			got = append(got, s.ConnectionID)
		}
		if p.Next.IsZero() {
			break
		}
		cursor = p.Next
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("session %s listed twice: %v", id, got)
		}
		seen[id] = true
	}
	// Sessions opened while paging may show up (on pages read after they were opened, before
	// the cursor reached them); the ones that existed before must all be there, in order.
	got = slices.DeleteFunc(got, func(id string) bool { return strings.HasPrefix(id, "new-") })
	if !slices.Equal(got, want) {
		t.Fatalf("paged history = %v, want %v", got, want)
	}
	p, err := h.st.ListSessions(h.ctx, "alice", domain.Cursor{}, 50)
	if err != nil || len(p.Sessions) != 45 || !p.Next.IsZero() {
		t.Fatalf("one big page: %d sessions, next %+v, %v; want 45 and no next page", len(p.Sessions), p.Next, err)
	}
}

func testActivity(t *testing.T, h *harness) {
	a, err := h.st.Activity(h.ctx, "nobody")
	if err != nil || !a.LastDisconnectedAt.IsZero() || !a.LatestOpenConnectedAt.IsZero() {
		t.Fatalf("Activity(nobody) = %+v, %v; want zero", a, err)
	}
	h.connect("alice", "c1", t0)
	h.disconnect("alice", "c1", t0.Add(3*time.Minute))
	h.connect("alice", "c2", t0.Add(time.Minute))
	h.disconnect("alice", "c2", t0.Add(2*time.Minute))
	h.connect("alice", "c3", t0.Add(4*time.Minute))
	h.connect("alice", "c4", t0.Add(5*time.Minute))
	h.connect("bob", "c5", t0.Add(time.Hour))
	h.disconnect("bob", "c5", t0.Add(2*time.Hour))
	a, err = h.st.Activity(h.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !a.LastDisconnectedAt.Equal(t0.Add(3*time.Minute)) || !a.LatestOpenConnectedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("Activity(alice) = %+v, want last disconnect %s and latest open %s", a, t0.Add(3*time.Minute), t0.Add(5*time.Minute))
	}
}

func testOpenSessions(t *testing.T, h *harness) {
	for i := range 7 {
		h.connect("alice", fmt.Sprintf("c%d", i), t0.Add(time.Duration(i)*time.Minute))
	}
	h.disconnect("alice", "c2", t0.Add(time.Hour))
	// Open, started by t0+5m, paged two at a time: c0 c1 c3 c4 c5.
	var got []string
	after := ""
	for {
		page, err := h.st.OpenSessions(h.ctx, t0.Add(5*time.Minute), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			if !s.Open() {
				t.Fatalf("OpenSessions listed the closed session %+v", s)
			}
			got = append(got, s.ConnectionID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ConnectionID
	}
	if want := []string{"c0", "c1", "c3", "c4", "c5"}; !slices.Equal(got, want) {
		t.Fatalf("open sessions = %v, want %v", got, want)
	}
}

func testPurge(t *testing.T, h *harness) {
	for i := range 5 {
		conn := fmt.Sprintf("old-%d", i)
		h.connect("alice", conn, t0)
		h.disconnect("alice", conn, t0.Add(time.Minute))
	}
	h.connect("alice", "open-old", t0) // open: never purged
	h.connect("alice", "recent", t0)
	h.disconnect("alice", "recent", t0.Add(time.Hour))

	cutoff := t0.Add(30 * time.Minute)
	var total int64
	for {
		n, err := h.st.PurgeEnded(h.ctx, cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n > 2 {
			t.Fatalf("PurgeEnded with limit 2 deleted %d", n)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 5 {
		t.Fatalf("purged %d sessions, want the 5 that ended before the cutoff", total)
	}
	var left []string
	for _, s := range h.all("alice") {
		left = append(left, s.ConnectionID)
	}
	slices.Sort(left)
	if want := []string{"open-old", "recent"}; !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
