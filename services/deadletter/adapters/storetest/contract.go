// Package storetest is the contract suite of the dead-letter archive's store: every engine the
// store runs on (SQLite in the unit tier, PostgreSQL in the integration tier) must pass it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/deadletter/adapters"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// Run runs the store contract. newDB(t) must return a fresh, empty database for t, closed and
// dropped when t ends.
func Run(t *testing.T, newDB func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, st *adapters.Store)
	}{
		{"AddedEntryReadsBackWithEveryField", testReadBack},
		{"EntryWithoutFailureRecordReadsBackWithEmptyFields", testBareEntry},
		{"AddIsIdempotentOnTheDedupeKey", testIdempotentAdd},
		{"ConcurrentAddsOfOneDeadLetterStoreIt", testConcurrentAdds},
		{"ListIsNewestFirstAndFiltersByTopic", testListOrderAndTopic},
		{"ListPagesWithBeforeWithoutRepeatsOrSkips", testListPaging},
		{"ListPendingLeavesOutReplayedEntries", testListPending},
		{"PendingIsOldestFirstWithinItsBounds", testPending},
		{"MarkReplayedStampsTheTimeAndCounts", testMarkReplayed},
		{"DeleteRemovesOnlyThatEntry", testDelete},
		{"DeleteArchivedBeforeRemovesOldEntriesInBatches", testDeleteArchivedBefore},
		{"DepthCountsPendingEntriesPerTopic", testDepth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			if _, err := database.Migrate(ctxFor(t), db, adapters.Migrations); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			tc.fn(t, adapters.NewStore(db))
		})
	}
}

// t0 is the base time of the tests: microsecond precision, as both engines store.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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

// letter is a dead letter of topic as the event router writes it, failed at last.
func letter(topic string, last time.Time) domain.Letter {
	return domain.Letter{
		UUID: uuid.NewString(),
		Metadata: map[string]string{
			events.MetadataEventType:          "post.created",
			events.PartitionKey:               "author-1",
			"traceparent":                     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			events.MetadataPoisonTopic:        topic,
			events.MetadataPoisonHandler:      "notify_followers",
			events.MetadataPoisonReason:       "boom: downstream unavailable",
			events.MetadataPoisonAttempts:     "5",
			events.MetadataPoisonFirstFailure: last.Add(-1500 * time.Millisecond).Format(time.RFC3339Nano),
			events.MetadataPoisonLastFailure:  last.Format(time.RFC3339Nano),
		},
		// Not UTF-8: the payload is stored as bytes, whatever they are.
		Payload: []byte{'{', 0xff, 0x00, '}'},
	}
}

// add archives a new dead letter of topic at archivedAt and returns its entry.
func add(t *testing.T, st *adapters.Store, topic string, archivedAt time.Time) domain.Entry {
	t.Helper()
	e := domain.NewEntry(newID(t), letter(topic, archivedAt.Add(-time.Second)), archivedAt)
	ok, err := st.Add(ctxFor(t), e)
	if err != nil || !ok {
		t.Fatalf("add: %v, %v; want stored", ok, err)
	}
	return e
}

func ids(es []domain.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func equalEntries(a, b domain.Entry) error {
	switch {
	case a.ID != b.ID, a.MessageID != b.MessageID, a.DedupeKey != b.DedupeKey, a.Topic != b.Topic,
		a.Handler != b.Handler, a.Reason != b.Reason, a.Attempts != b.Attempts, a.ReplayCount != b.ReplayCount:
		return fmt.Errorf("fields differ:\n got %+v\nwant %+v", a, b)
	case !a.FirstFailedAt.Equal(b.FirstFailedAt), !a.LastFailedAt.Equal(b.LastFailedAt),
		!a.ArchivedAt.Equal(b.ArchivedAt), !a.ReplayedAt.Equal(b.ReplayedAt):
		return fmt.Errorf("times differ: got first %v last %v archived %v replayed %v, want %v %v %v %v",
			a.FirstFailedAt, a.LastFailedAt, a.ArchivedAt, a.ReplayedAt, b.FirstFailedAt, b.LastFailedAt, b.ArchivedAt, b.ReplayedAt)
	case !maps.Equal(a.Metadata, b.Metadata):
		return fmt.Errorf("metadata %v, want %v", a.Metadata, b.Metadata)
	case string(a.Payload) != string(b.Payload):
		return fmt.Errorf("payload %q, want %q", a.Payload, b.Payload)
	}
	return nil
}

func testReadBack(t *testing.T, st *adapters.Store) {
	want := add(t, st, "posts", t0)
	got, err := st.Get(ctxFor(t), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalEntries(got, want); err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 5 || got.Topic != "posts" || got.LastFailedAt.IsZero() || got.Replayed() {
		t.Fatalf("entry %+v lost the failure record", got)
	}
	if _, err := st.Get(ctxFor(t), newID(t)); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get of an unknown id: %v, want ErrNotFound", err)
	}
}

func testBareEntry(t *testing.T, st *adapters.Store) {
	want := domain.NewEntry(newID(t), domain.Letter{UUID: "not-even-a-uuid"}, t0)
	if ok, err := st.Add(ctxFor(t), want); err != nil || !ok {
		t.Fatalf("add: %v, %v", ok, err)
	}
	got, err := st.Get(ctxFor(t), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalEntries(got, want); err != nil {
		t.Fatal(err)
	}
	if !got.FirstFailedAt.IsZero() || got.Topic != "" || len(got.Metadata) != 0 || len(got.Payload) != 0 {
		t.Fatalf("bare entry read back as %+v", got)
	}
}

func testIdempotentAdd(t *testing.T, st *adapters.Store) {
	l := letter("posts", t0)
	first := domain.NewEntry(newID(t), l, t0)
	again := domain.NewEntry(newID(t), l, t0.Add(time.Minute)) // the redelivery
	if ok, err := st.Add(ctxFor(t), first); err != nil || !ok {
		t.Fatalf("first add: %v, %v", ok, err)
	}
	if ok, err := st.Add(ctxFor(t), again); err != nil || ok {
		t.Fatalf("add of a redelivery: stored=%v, %v; want not stored, no error", ok, err)
	}
	// The same message failing again later is a new dead-lettering.
	l.Metadata = maps.Clone(l.Metadata)
	l.Metadata[events.MetadataPoisonLastFailure] = t0.Add(time.Hour).Format(time.RFC3339Nano)
	later := domain.NewEntry(newID(t), l, t0.Add(time.Hour))
	if ok, err := st.Add(ctxFor(t), later); err != nil || !ok {
		t.Fatalf("add of a later failure: %v, %v; want stored", ok, err)
	}
	all, err := st.List(ctxFor(t), domain.Filter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), []string{later.ID, first.ID}; !slices.Equal(got, want) {
		t.Fatalf("archive holds %v, want %v", got, want)
	}
}

func testConcurrentAdds(t *testing.T, st *adapters.Store) {
	l := letter("posts", t0)
	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int
		errs   []error
	)
	for range n {
		wg.Go(func() {
			ok, err := st.Add(ctxFor(t), domain.NewEntry(newID(t), l, t0))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				stored++
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || stored != 1 {
		t.Fatalf("%d concurrent adds of one dead letter stored %d (errors %v), want exactly 1", n, stored, errs)
	}
}

func testListOrderAndTopic(t *testing.T, st *adapters.Store) {
	a := add(t, st, "posts", t0)
	b := add(t, st, "users", t0.Add(time.Second))
	c := add(t, st, "posts", t0.Add(2*time.Second))
	for _, tc := range []struct {
		topic string
		want  []string
	}{
		{"", []string{c.ID, b.ID, a.ID}},
		{"posts", []string{c.ID, a.ID}},
		{"users", []string{b.ID}},
		{"nobody", nil},
	} {
		got, err := st.List(ctxFor(t), domain.Filter{Topic: tc.topic, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("list topic %q = %v, want %v", tc.topic, ids(got), tc.want)
		}
	}
	got, err := st.List(ctxFor(t), domain.Filter{Limit: 2})
	if err != nil || !slices.Equal(ids(got), []string{c.ID, b.ID}) {
		t.Fatalf("list limit 2 = %v, %v; want the two newest", ids(got), err)
	}
}

func testListPaging(t *testing.T, st *adapters.Store) {
	var want []string
	for i := range 7 {
		want = append(want, add(t, st, "posts", t0.Add(time.Duration(i)*time.Second)).ID)
	}
	want = reversed(want)
	var got []string
	before := ""
	for page := 0; ; page++ {
		items, err := st.List(ctxFor(t), domain.Filter{Before: before, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(items)...)
		if len(items) < 3 {
			break
		}
		before = items[len(items)-1].ID
		if page == 0 {
			// Archived between two pages: newer than every page, so it shows in none of the
			// following ones and shifts nothing.
			add(t, st, "posts", t0.Add(time.Hour))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
}

func testListPending(t *testing.T, st *adapters.Store) {
	a := add(t, st, "posts", t0)
	b := add(t, st, "posts", t0.Add(time.Second))
	if _, err := st.MarkReplayed(ctxFor(t), a.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := st.List(ctxFor(t), domain.Filter{Pending: true, Limit: 10})
	if err != nil || !slices.Equal(ids(got), []string{b.ID}) {
		t.Fatalf("pending list = %v, %v; want only %s", ids(got), err, b.ID)
	}
}

func testPending(t *testing.T, st *adapters.Store) {
	var posts []string
	for i := range 5 {
		posts = append(posts, add(t, st, "posts", t0.Add(time.Duration(i)*time.Second)).ID)
		add(t, st, "users", t0.Add(time.Duration(i)*time.Second))
	}
	if _, err := st.MarkReplayed(ctxFor(t), posts[1], t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	newer := add(t, st, "posts", t0.Add(time.Hour)) // beyond through
	for _, tc := range []struct {
		name        string
		after, thru string
		limit       int
		want        []string
	}{
		{"from the oldest", "", posts[4], 10, []string{posts[0], posts[2], posts[3], posts[4]}},
		{"limited", "", posts[4], 2, []string{posts[0], posts[2]}},
		{"after a cursor", posts[2], posts[4], 10, []string{posts[3], posts[4]}},
		{"through an earlier entry", "", posts[3], 10, []string{posts[0], posts[2], posts[3]}},
	} {
		got, err := st.Pending(ctxFor(t), "posts", tc.after, tc.thru, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: pending = %v, want %v", tc.name, ids(got), tc.want)
		}
	}
	all, err := st.Pending(ctxFor(t), "", "", newer.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 || all[len(all)-1].ID != newer.ID {
		t.Fatalf("pending of every topic = %d entries ending %s, want 10 ending with %s", len(all), all[len(all)-1].ID, newer.ID)
	}
}

func testMarkReplayed(t *testing.T, st *adapters.Store) {
	e := add(t, st, "posts", t0)
	at := t0.Add(time.Minute)
	got, err := st.MarkReplayed(ctxFor(t), e.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReplayCount != 1 || !got.ReplayedAt.Equal(at) || got.ID != e.ID {
		t.Fatalf("after one replay: count %d at %v, want 1 at %v", got.ReplayCount, got.ReplayedAt, at)
	}
	at2 := at.Add(time.Hour)
	if _, err := st.MarkReplayed(ctxFor(t), e.ID, at2); err != nil {
		t.Fatal(err)
	}
	got, err = st.Get(ctxFor(t), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReplayCount != 2 || !got.ReplayedAt.Equal(at2) {
		t.Fatalf("after two replays: count %d at %v, want 2 at %v", got.ReplayCount, got.ReplayedAt, at2)
	}
	if _, err := st.MarkReplayed(ctxFor(t), newID(t), at); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("mark of an unknown id: %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, st *adapters.Store) {
	a := add(t, st, "posts", t0)
	b := add(t, st, "posts", t0)
	if err := st.Delete(ctxFor(t), a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctxFor(t), a.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctxFor(t), b.ID); err != nil {
		t.Fatalf("the other entry: %v", err)
	}
	if err := st.Delete(ctxFor(t), a.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func testDeleteArchivedBefore(t *testing.T, st *adapters.Store) {
	var old []string
	for i := range 5 {
		old = append(old, add(t, st, "posts", t0.Add(time.Duration(i)*time.Minute)).ID)
	}
	cutoff := t0.Add(time.Hour)
	atCutoff := add(t, st, "posts", cutoff) // not before the cutoff: kept
	young := add(t, st, "users", cutoff.Add(time.Minute))

	var deleted []string
	for {
		batch, err := st.DeleteArchivedBefore(ctxFor(t), cutoff, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) > 2 {
			t.Fatalf("one batch deleted %d entries, limit 2", len(batch))
		}
		deleted = append(deleted, batch...)
		if len(batch) < 2 {
			break
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, old) {
		t.Fatalf("deleted %v, want the old %v", deleted, old)
	}
	left, err := st.List(ctxFor(t), domain.Filter{Limit: 10})
	if err != nil || !slices.Equal(ids(left), []string{young.ID, atCutoff.ID}) {
		t.Fatalf("left %v, %v; want %v", ids(left), err, []string{young.ID, atCutoff.ID})
	}
}

func testDepth(t *testing.T, st *adapters.Store) {
	depth, err := st.Depth(ctxFor(t))
	if err != nil || len(depth) != 0 {
		t.Fatalf("depth of an empty archive = %v, %v", depth, err)
	}
	p1 := add(t, st, "posts", t0)
	add(t, st, "posts", t0)
	u := add(t, st, "users", t0)
	for _, id := range []string{p1.ID, u.ID} {
		if _, err := st.MarkReplayed(ctxFor(t), id, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	depth, err = st.Depth(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"posts": 1, "users": 0}; !maps.Equal(depth, want) {
		t.Fatalf("depth = %v, want %v", depth, want)
	}
}
