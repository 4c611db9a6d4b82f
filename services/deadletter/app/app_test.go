package app_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/deadletter/adapters"
	"github.com/piazza-social/piazza/services/deadletter/app"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// republisher records what it publishes and fails from call failFrom on (0: never).
type republisher struct {
	mu       sync.Mutex
	failFrom int
	sent     []string // topic/uuid
	metadata []map[string]string
}

func (r *republisher) Republish(_ context.Context, topic string, l domain.Letter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failFrom > 0 && len(r.sent)+1 >= r.failFrom {
		return errors.New("bus down")
	}
	r.sent = append(r.sent, topic+"/"+l.UUID)
	r.metadata = append(r.metadata, l.Metadata)
	return nil
}

func newApp(t *testing.T, pub app.Republisher, cfg app.Config) *app.Application {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if _, err := database.Migrate(t.Context(), db, adapters.Migrations); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, app.Deps{Store: adapters.NewStore(db), Republisher: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func archive(t *testing.T, a *app.Application, topic string) domain.Entry {
	t.Helper()
	l := domain.Letter{UUID: uuid.NewString(), Payload: []byte("{}"), Metadata: map[string]string{
		events.PartitionKey:              "k",
		events.MetadataPoisonTopic:       topic,
		events.MetadataPoisonLastFailure: time.Now().Format(time.RFC3339Nano),
	}}
	e, ok, err := a.Archive(t.Context(), l)
	if err != nil || !ok {
		t.Fatalf("archive: %v, %v", ok, err)
	}
	return e
}

func TestListPagesWithNextCursorUntilTheLastPage(t *testing.T) {
	a := newApp(t, nil, app.Config{})
	var want []string
	for range 5 {
		want = append(want, archive(t, a, "posts").ID)
	}
	slices.Reverse(want)
	var got []string
	q := app.ListQuery{Limit: 2}
	for pages := 1; ; pages++ {
		p, err := a.List(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Items {
			got = append(got, e.ID)
		}
		if p.NextCursor == "" {
			if pages != 3 {
				t.Fatalf("%d pages of 2 for 5 entries, want 3", pages)
			}
			break
		}
		q.Cursor = p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
}

func TestListWithExactlyLimitEntriesHasNoNextPage(t *testing.T) {
	a := newApp(t, nil, app.Config{})
	archive(t, a, "posts")
	archive(t, a, "posts")
	p, err := a.List(t.Context(), app.ListQuery{Limit: 2})
	if err != nil || len(p.Items) != 2 || p.NextCursor != "" {
		t.Fatalf("list: %d items, next %q, %v; want 2 and no next page", len(p.Items), p.NextCursor, err)
	}
}

func TestEntryIDsAreFoundInAnyCase(t *testing.T) {
	a := newApp(t, nil, app.Config{})
	e := archive(t, a, "posts")
	if got, err := a.Show(t.Context(), strings.ToUpper(e.ID)); err != nil || got.ID != e.ID {
		t.Fatalf("show of the upper-case id: %v, %v", got.ID, err)
	}
	if err := a.Purge(t.Context(), strings.ToUpper(e.ID)); err != nil {
		t.Fatalf("purge of the upper-case id: %v", err)
	}
}

func TestListRejectsABadCursorAndLimit(t *testing.T) {
	a := newApp(t, nil, app.Config{})
	if _, err := a.List(t.Context(), app.ListQuery{Cursor: "page-2"}); !errors.Is(err, domain.ErrInvalidCursor) {
		t.Errorf("cursor page-2: %v, want ErrInvalidCursor", err)
	}
	if _, err := a.List(t.Context(), app.ListQuery{Limit: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}

func TestReplayPublishesTheOriginalMessageWithoutTheFailureRecord(t *testing.T) {
	pub := &republisher{}
	a := newApp(t, pub, app.Config{})
	e := archive(t, a, "posts")
	if _, err := a.Replay(t.Context(), e.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{"posts/" + e.MessageID}; !slices.Equal(pub.sent, want) {
		t.Fatalf("published %v, want %v", pub.sent, want)
	}
	if want := map[string]string{events.PartitionKey: "k"}; !maps.Equal(pub.metadata[0], want) {
		t.Fatalf("replayed metadata %v, want %v", pub.metadata[0], want)
	}
}

func TestReplayOfEntryWithoutOriginalTopicFailsAndStaysPending(t *testing.T) {
	pub := &republisher{}
	a := newApp(t, pub, app.Config{})
	e := archive(t, a, "")
	if _, err := a.Replay(t.Context(), e.ID); !errors.Is(err, domain.ErrNoOriginalTopic) {
		t.Fatalf("replay: %v, want ErrNoOriginalTopic", err)
	}
	got, err := a.Show(t.Context(), e.ID)
	if err != nil || got.Replayed() || len(pub.sent) != 0 {
		t.Fatalf("after a failed replay: replayed=%v, published %v, %v", got.Replayed(), pub.sent, err)
	}
}

func TestReplayAllGoesOldestFirstAcrossBatchesAndFiltersByTopic(t *testing.T) {
	pub := &republisher{}
	a := newApp(t, pub, app.Config{ReplayBatch: 2})
	var want []string
	for range 5 {
		want = append(want, "posts/"+archive(t, a, "posts").MessageID)
		archive(t, a, "users")
	}
	n, err := a.ReplayAll(t.Context(), "posts")
	if err != nil || n != 5 {
		t.Fatalf("ReplayAll: %d, %v; want 5", n, err)
	}
	if !slices.Equal(pub.sent, want) {
		t.Fatalf("published %v, want oldest first %v", pub.sent, want)
	}
	depth, err := a.Depth(t.Context())
	if err != nil || depth["posts"] != 0 || depth["users"] != 5 {
		t.Fatalf("depth %v, %v; want posts 0, users 5", depth, err)
	}
}

func TestReplayAllStopsAtTheFirstFailure(t *testing.T) {
	pub := &republisher{failFrom: 2}
	a := newApp(t, pub, app.Config{})
	first := archive(t, a, "posts")
	archive(t, a, "posts")
	archive(t, a, "posts")
	n, err := a.ReplayAll(t.Context(), "")
	if err == nil || n != 1 {
		t.Fatalf("ReplayAll with the bus failing on the second: %d, %v; want 1 and an error", n, err)
	}
	depth, err := a.Depth(t.Context())
	if err != nil || depth["posts"] != 2 {
		t.Fatalf("depth %v, %v; want 2 still pending", depth, err)
	}
	if e, _ := a.Show(t.Context(), first.ID); !e.Replayed() {
		t.Fatal("the entry replayed before the failure is not recorded as replayed")
	}
}
