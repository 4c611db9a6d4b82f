// Package storetest holds the contract suite of notification-service's inbox store, run
// against SQLite in the unit tier and a fresh PostgreSQL database in the integration tier, and
// a helper opening a migrated store for other tests.
package storetest

import (
	"context"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/services/notification/adapters"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// OpenStore migrates db and returns a store on it.
func OpenStore(t testing.TB, db *database.DB) *adapters.Store {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, adapters.Migrations); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return adapters.NewStore(db)
}

// OpenSQLiteStore returns a store on a new, migrated SQLite database, and the database.
func OpenSQLiteStore(t *testing.T) (*adapters.Store, *database.DB) {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	return OpenStore(t, db), db
}

// Run runs the store contract. newDB(t) must return a fresh, empty database for t, closed and
// dropped when t ends.
func Run(t *testing.T, newDB func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"SeqsStartAtOneAndIncreaseWithoutGapsPerUser", testSeqsPerUser},
		{"DeliveredNotificationReadsBackExactly", testRoundTrip},
		{"ConcurrentDeliveriesToOneUserTakeDistinctConsecutiveSeqs", testConcurrentOneUser},
		{"ConcurrentFanOutsToOverlappingUsersNeitherDeadlockNorSkip", testConcurrentOverlap},
		{"RedeliveryStoresNothingNewAndBurnsNoSeq", testRedelivery},
		{"ConcurrentRedeliveriesOfOneEventStoreItOnce", testConcurrentRedelivery},
		{"AFullBatchFitsOneDelivery", testFullBatch},
		{"OversizedOrInvalidBatchesAreRefused", testBatchLimits},
		{"SincePagesOldestFirstAndSaysWhetherMoreFollow", testSince},
		{"ListPagesNewestFirstWithoutDuplicatesOrSkipsWhileNotificationsArrive", testList},
		{"MarkReadIsClampedAndNeverMovesBackwards", testMarkRead},
		{"UnreadCountsAboveTheMarker", testUnread},
		{"UnknownUserHasAnEmptyInbox", testUnknownUser},
		{"EveryRecipientOfAnEventGetsTheDataStoredFirst", testEventStoredOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			tc.fn(t, &harness{st: OpenStore(t, db), db: db})
		})
	}
	t.Run("InboxesStoredBeforeEventDataWasSharedSurviveTheMigration", func(t *testing.T) {
		testMigrationFromCopies(t, newDB(t))
	})
}

// t0 is the base time of the tests: microsecond precision, as both engines store.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

type harness struct {
	st *adapters.Store
	db *database.DB
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newID(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func users(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = newID(t)
	}
	return out
}

// draft returns a post.liked draft of a fresh event.
func draft(t testing.TB) domain.Draft {
	t.Helper()
	id := newID(t)
	return domain.Draft{
		EventID:   id,
		Type:      eventsv1.PostLiked,
		Data:      json.RawMessage(`{"actor":{"id":"a","username":"ann"},"post_id":"` + id + `"}`),
		CreatedAt: t0,
	}
}

func (h *harness) deliver(t *testing.T, d domain.Draft, ids ...string) ([]domain.Notification, int) {
	t.Helper()
	out, fresh, err := h.st.Deliver(ctxFor(t), d, ids)
	if err != nil {
		t.Fatalf("deliver %s to %d users: %v", d.EventID, len(ids), err)
	}
	return out, fresh
}

// inbox returns every notification of userID, oldest first.
func (h *harness) inbox(t *testing.T, userID string) []domain.Notification {
	t.Helper()
	var all []domain.Notification
	after := int64(0)
	for {
		s, err := h.st.Since(ctxFor(t), userID, after, domain.MaxSince)
		if err != nil {
			t.Fatalf("since: %v", err)
		}
		all = append(all, s.Items...)
		if !s.HasMore {
			return all
		}
		after = s.Items[len(s.Items)-1].Seq
	}
}

func seqs(ns []domain.Notification) []int64 {
	out := make([]int64, len(ns))
	for i, n := range ns {
		out[i] = n.Seq
	}
	return out
}

func oneTo(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func testSeqsPerUser(t *testing.T, h *harness) {
	u := users(t, 3)
	// u0 gets 3 notifications, u1 2, u2 1, interleaved across events.
	h.deliver(t, draft(t), u[0], u[1], u[2])
	h.deliver(t, draft(t), u[1], u[0])
	out, fresh := h.deliver(t, draft(t), u[0])
	if fresh != 1 || len(out) != 1 || out[0].Seq != 3 || out[0].UserID != u[0] {
		t.Fatalf("third delivery to u0 = %+v (fresh %d), want seq 3", out, fresh)
	}
	for i, want := range [][]int64{{1, 2, 3}, {1, 2}, {1}} {
		if got := seqs(h.inbox(t, u[i])); !slices.Equal(got, want) {
			t.Errorf("user %d seqs %v, want %v", i, got, want)
		}
	}
}

func testRoundTrip(t *testing.T, h *harness) {
	u := newID(t)
	d := draft(t)
	d.Data = json.RawMessage(`{"z":1,"a":"ünïcode ✓","nested":{"b":[1,2]}}`) // key order kept
	d.CreatedAt = t0.Add(123 * time.Nanosecond)                              // truncated to µs
	out, fresh := h.deliver(t, d, u)
	want := domain.Notification{UserID: u, Seq: 1, EventID: d.EventID, Type: d.Type, Data: d.Data, CreatedAt: t0}
	if fresh != 1 || len(out) != 1 || !equal(out[0], want) {
		t.Fatalf("Deliver returned %+v (fresh %d), want %+v", out, fresh, want)
	}
	got := h.inbox(t, u)
	if len(got) != 1 || !equal(got[0], want) || got[0].CreatedAt.Location() != time.UTC {
		t.Fatalf("inbox %+v, want %+v in UTC", got, want)
	}
}

func equal(a, b domain.Notification) bool {
	return a.UserID == b.UserID && a.Seq == b.Seq && a.EventID == b.EventID && a.Type == b.Type &&
		string(a.Data) == string(b.Data) && a.CreatedAt.Equal(b.CreatedAt) && a.Read == b.Read
}

func testConcurrentOneUser(t *testing.T, h *harness) {
	const writers = 24
	u := newID(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			// Each delivery also touches a user of its own, so that transactions differ.
			if _, _, err := h.st.Deliver(ctxFor(t), draft(t), []string{u, newID(t)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	inbox := h.inbox(t, u)
	if got := seqs(inbox); !slices.Equal(got, oneTo(writers)) {
		t.Fatalf("seqs %v, want 1..%d with no duplicate or gap", got, writers)
	}
	events := map[string]bool{}
	for _, n := range inbox {
		events[n.EventID] = true
	}
	if len(events) != writers {
		t.Fatalf("%d distinct events in the inbox, want %d", len(events), writers)
	}
}

func testConcurrentOverlap(t *testing.T, h *harness) {
	const fanOuts = 8
	us := users(t, 60)
	var wg sync.WaitGroup
	errs := make(chan error, fanOuts)
	for i := range fanOuts {
		ids := slices.Clone(us)
		rand.New(rand.NewPCG(uint64(i), 7)).Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
		wg.Go(func() {
			if _, _, err := h.st.Deliver(ctxFor(t), draft(t), ids); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, u := range us {
		if got := seqs(h.inbox(t, u)); !slices.Equal(got, oneTo(fanOuts)) {
			t.Fatalf("user %s seqs %v, want 1..%d", u, got, fanOuts)
		}
	}
}

func testRedelivery(t *testing.T, h *harness) {
	a, b, c := newID(t), newID(t), newID(t)
	d := draft(t)
	first, fresh := h.deliver(t, d, a, b)
	if fresh != 2 {
		t.Fatalf("first delivery stored %d, want 2", fresh)
	}
	// The same event again, to a larger set (a retried fan-out batch): only c is new.
	again, fresh := h.deliver(t, d, c, b, a, a)
	if fresh != 1 || len(again) != 3 {
		t.Fatalf("redelivery returned %d notifications, %d new; want 3, 1 new", len(again), fresh)
	}
	for _, n := range again {
		for _, f := range first {
			if n.UserID == f.UserID && !equal(n, f) {
				t.Errorf("redelivery returned %+v for %s, want the stored %+v", n, n.UserID, f)
			}
		}
	}
	if _, fresh := h.deliver(t, d, a, b, c); fresh != 0 {
		t.Fatalf("third delivery stored %d, want 0", fresh)
	}
	// No number was burnt: the next event is seq 2 for everyone.
	out, _ := h.deliver(t, draft(t), a, b, c)
	for _, n := range out {
		if n.Seq != 2 {
			t.Errorf("next event for %s has seq %d, want 2", n.UserID, n.Seq)
		}
	}
	for _, u := range []string{a, b, c} {
		if got := seqs(h.inbox(t, u)); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("user %s seqs %v, want [1 2]", u, got)
		}
	}
}

func testConcurrentRedelivery(t *testing.T, h *harness) {
	const copies = 8
	us := users(t, 20)
	d := draft(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
	)
	errs := make(chan error, copies)
	for range copies {
		wg.Go(func() {
			_, n, err := h.st.Deliver(ctxFor(t), d, us)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			fresh += n
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if fresh != len(us) {
		t.Fatalf("%d notifications reported new across the copies, want %d", fresh, len(us))
	}
	out, _ := h.deliver(t, draft(t), us...)
	for _, n := range out {
		if n.Seq != 2 {
			t.Fatalf("the next event has seq %d for %s, want 2 (no burnt seq)", n.Seq, n.UserID)
		}
	}
}

func testFullBatch(t *testing.T, h *harness) {
	us := users(t, domain.MaxDeliveryBatch)
	out, fresh := h.deliver(t, draft(t), us...)
	if fresh != len(us) || len(out) != len(us) {
		t.Fatalf("delivered %d (%d new), want %d", len(out), fresh, len(us))
	}
	if !slices.IsSortedFunc(out, func(a, b domain.Notification) int { return strings.Compare(a.UserID, b.UserID) }) {
		t.Fatal("notifications not sorted by user id")
	}
}

func testBatchLimits(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	if _, _, err := h.st.Deliver(ctx, draft(t), users(t, domain.MaxDeliveryBatch+1)); err == nil {
		t.Error("a batch over the limit was accepted")
	}
	if _, _, err := h.st.Deliver(ctx, draft(t), []string{newID(t), ""}); err == nil {
		t.Error("an empty user id was accepted")
	}
	out, fresh, err := h.st.Deliver(ctx, draft(t), nil)
	if err != nil || len(out) != 0 || fresh != 0 {
		t.Errorf("empty batch = %v, %d, %v; want nothing", out, fresh, err)
	}
}

func testSince(t *testing.T, h *harness) {
	u := newID(t)
	for range 7 {
		h.deliver(t, draft(t), u)
	}
	ctx := ctxFor(t)
	tests := []struct {
		after   int64
		limit   int
		want    []int64
		hasMore bool
	}{
		{0, 3, []int64{1, 2, 3}, true},
		{3, 3, []int64{4, 5, 6}, true},
		{4, 3, []int64{5, 6, 7}, false},
		{6, 1000, []int64{7}, false},
		{7, 10, nil, false},
		{99, 10, nil, false},
	}
	for _, tc := range tests {
		s, err := h.st.Since(ctx, u, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(s.Items); !slices.Equal(got, tc.want) || s.HasMore != tc.hasMore {
			t.Errorf("Since(%d, %d) = %v more=%v; want %v more=%v", tc.after, tc.limit, got, s.HasMore, tc.want, tc.hasMore)
		}
	}
}

func testList(t *testing.T, h *harness) {
	u := newID(t)
	for range 25 {
		h.deliver(t, draft(t), u)
	}
	ctx := ctxFor(t)
	var (
		got    []int64
		cursor domain.Cursor
		pages  int
	)
	for {
		p, err := h.st.List(ctx, u, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, seqs(p.Items)...)
		// Notifications stored while the client pages must not disturb the pages.
		h.deliver(t, draft(t), u)
		if p.Next.IsZero() {
			break
		}
		cursor = p.Next
	}
	want := make([]int64, 25)
	for i := range want {
		want[i] = int64(25 - i)
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("paged %v in %d pages, want %v in 3", got, pages, want)
	}
	// An exact multiple of the page size ends without an empty extra page.
	v := newID(t)
	for range 4 {
		h.deliver(t, draft(t), v)
	}
	p, err := h.st.List(ctx, v, domain.Cursor{}, 2)
	if err != nil || p.Next.IsZero() {
		t.Fatalf("first page %v, %v; want a next cursor", p, err)
	}
	p, err = h.st.List(ctx, v, p.Next, 2)
	if err != nil || !p.Next.IsZero() || !slices.Equal(seqs(p.Items), []int64{2, 1}) {
		t.Fatalf("last page %v (next %v), %v; want [2 1] and no next cursor", seqs(p.Items), p.Next, err)
	}
}

func testMarkRead(t *testing.T, h *harness) {
	u := newID(t)
	for range 5 {
		h.deliver(t, draft(t), u)
	}
	ctx := ctxFor(t)
	steps := []struct {
		upTo, want int64
	}{
		{2, 2},
		{1, 2},  // never backwards
		{0, 2},  // never backwards
		{99, 5}, // clamped to last_seq
		{4, 5},
	}
	for _, s := range steps {
		got, err := h.st.MarkRead(ctx, u, s.upTo)
		if err != nil || got != s.want {
			t.Fatalf("MarkRead(%d) = %d, %v; want %d", s.upTo, got, err, s.want)
		}
	}
	// The clamp is to the inbox as it was: a later notification is unread.
	h.deliver(t, draft(t), u)
	var read []bool
	for _, n := range h.inbox(t, u) {
		read = append(read, n.Read)
	}
	if want := []bool{true, true, true, true, true, false}; !slices.Equal(read, want) {
		t.Fatalf("read flags %v, want %v", read, want)
	}
	p, err := h.st.List(ctx, u, domain.Cursor{}, 2)
	if err != nil || len(p.Items) != 2 || p.Items[0].Read || !p.Items[1].Read {
		t.Fatalf("List read flags wrong: %+v, %v", p.Items, err)
	}
}

func testUnread(t *testing.T, h *harness) {
	u := newID(t)
	ctx := ctxFor(t)
	check := func(count, last int64) {
		t.Helper()
		got, err := h.st.Unread(ctx, u)
		if err != nil || got != (domain.Unread{Count: count, LastSeq: last}) {
			t.Fatalf("Unread = %+v, %v; want count %d, last %d", got, err, count, last)
		}
	}
	check(0, 0)
	for range 4 {
		h.deliver(t, draft(t), u)
	}
	check(4, 4)
	if _, err := h.st.MarkRead(ctx, u, 3); err != nil {
		t.Fatal(err)
	}
	check(1, 4)
	h.deliver(t, draft(t), u, newID(t))
	check(2, 5)
	if _, err := h.st.MarkRead(ctx, u, 5); err != nil {
		t.Fatal(err)
	}
	check(0, 5)
}

func testUnknownUser(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	h.deliver(t, draft(t), newID(t)) // someone else's inbox is not empty
	u := newID(t)
	p, err := h.st.List(ctx, u, domain.Cursor{}, 20)
	if err != nil || len(p.Items) != 0 || !p.Next.IsZero() {
		t.Errorf("List = %+v, %v; want an empty last page", p, err)
	}
	if s, err := h.st.Since(ctx, u, 0, 10); err != nil || len(s.Items) != 0 || s.HasMore {
		t.Errorf("Since = %+v, %v; want nothing", s, err)
	}
	if m, err := h.st.MarkRead(ctx, u, 10); err != nil || m != 0 {
		t.Errorf("MarkRead = %d, %v; want marker 0", m, err)
	}
	if got, err := h.st.Unread(ctx, u); err != nil || got != (domain.Unread{}) {
		t.Errorf("Unread = %+v, %v; want zero", got, err)
	}
	// A first notification after a MarkRead on an empty inbox is unread.
	h.deliver(t, draft(t), u)
	if got := h.inbox(t, u); len(got) != 1 || got[0].Read {
		t.Errorf("inbox %+v, want one unread notification", got)
	}
}

func testEventStoredOnce(t *testing.T, h *harness) {
	a, b := newID(t), newID(t)
	d := draft(t)
	h.deliver(t, d, a)
	// The next batch of the same event, with a draft that came out different (say the actor
	// was renamed in between): b is told what a was told.
	changed := d
	changed.Data = json.RawMessage(`{"actor":{"id":"a","username":"renamed"}}`)
	changed.CreatedAt = t0.Add(time.Hour)
	out, fresh := h.deliver(t, changed, a, b)
	if fresh != 1 || len(out) != 2 {
		t.Fatalf("second batch returned %d notifications, %d new; want 2, 1 new", len(out), fresh)
	}
	for _, n := range out {
		want := domain.Notification{UserID: n.UserID, Seq: 1, EventID: d.EventID, Type: d.Type, Data: d.Data, CreatedAt: t0}
		if !equal(n, want) {
			t.Errorf("Deliver returned %+v, want %+v", n, want)
		}
		if got := h.inbox(t, n.UserID); len(got) != 1 || !equal(got[0], want) {
			t.Errorf("inbox of %s is %+v, want [%+v]", n.UserID, got, want)
		}
	}
}

// testMigrationFromCopies fills an inbox of the first schema version, where every
// notification held its own copy of the event's data, migrates to the latest, and checks that
// nothing was lost and that the inbox goes on from where it was.
func testMigrationFromCopies(t *testing.T, db *database.DB) {
	ctx := ctxFor(t)
	const first = "0001_create_inbox.sql"
	body, err := fs.ReadFile(adapters.Migrations.FS, path.Join(adapters.Migrations.Dir, first))
	if err != nil {
		t.Fatal(err)
	}
	v1 := database.MigrationSet{Name: adapters.Migrations.Name, Dir: "m", FS: fstest.MapFS{"m/" + first: {Data: body}}}
	if _, err := database.Migrate(ctx, db, v1); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	a, b := newID(t), newID(t)
	e1, e2 := draft(t), draft(t)
	e2.Type, e2.CreatedAt = eventsv1.UserFollowed, t0.Add(time.Minute)
	old := []struct {
		user string
		seq  int64
		d    domain.Draft
	}{{a, 1, e1}, {a, 2, e2}, {b, 1, e1}}
	for _, r := range old {
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO notifications (user_id, seq, event_id, type, data, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.user, r.seq, r.d.EventID, r.d.Type, string(r.d.Data), r.d.CreatedAt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO inbox_counters (user_id, last_seq, read_seq)
		VALUES ($1, 2, 1), ($2, 1, 0)`, a, b); err != nil {
		t.Fatal(err)
	}

	h := &harness{st: OpenStore(t, db), db: db}
	for _, r := range old {
		want := domain.Notification{UserID: r.user, Seq: r.seq, EventID: r.d.EventID, Type: r.d.Type, Data: r.d.Data,
			CreatedAt: r.d.CreatedAt, Read: r.user == a && r.seq == 1}
		inbox := h.inbox(t, r.user)
		if len(inbox) < int(r.seq) || !equal(inbox[r.seq-1], want) {
			t.Errorf("after the migration %s's inbox is %+v, want %+v at seq %d", r.user, inbox, want, r.seq)
		}
	}
	if got, err := h.st.Unread(ctx, a); err != nil || got != (domain.Unread{Count: 1, LastSeq: 2}) {
		t.Errorf("Unread(a) = %+v, %v; want count 1, last 2", got, err)
	}
	// A redelivery of a migrated event stores it only for the new recipient.
	c := newID(t)
	if _, fresh := h.deliver(t, e1, a, b, c); fresh != 1 {
		t.Errorf("redelivery of a migrated event stored %d, want 1 (only the new recipient)", fresh)
	}
	out, _ := h.deliver(t, draft(t), a, b, c)
	for _, n := range out {
		if want := map[string]int64{a: 3, b: 2, c: 2}[n.UserID]; n.Seq != want {
			t.Errorf("the next event has seq %d for %s, want %d", n.Seq, n.UserID, want)
		}
	}
}
