package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/post/adapters"
	"github.com/piazza-social/piazza/services/post/domain"
)

// Run runs the store contract. newDB(t) must return a fresh, empty database for t, closed and
// dropped when t ends.
func Run(t *testing.T, newDB func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreatedPostReadsBackWithItsEvent", testCreateAndRead},
		{"OnlyTheAuthorDeletesAndLikesAndCommentsGoWithThePost", testDelete},
		{"LikeAndUnlikeAreIdempotentAndCountsDoNotDrift", testLikeIdempotent},
		{"ConcurrentLikesByManyUsersKeepExactCounts", testConcurrentLikes},
		{"ConcurrentCommentsKeepExactCounts", testConcurrentComments},
		{"DeletionRacingLikesAndCommentsLeavesNothingBehindAndIsTheLastEvent", testDeleteRace},
		{"FailingOutboxRollsBackEveryChange", testOutboxFailure},
		{"LikedByMeIsRelativeToTheViewer", testLikedByMe},
		{"CommentsPageOldestFirstWithoutDuplicatesOrSkipsUnderConcurrentInserts", testListComments},
		{"UserPostsPageNewestFirstWithoutDuplicatesOrSkipsUnderConcurrentInserts", testListUserPosts},
		{"HomeTimelineMergesFollowedAuthorsNewestFirstAcrossPages", testHomeTimeline},
		{"PagingWhileWritersInsertNeverRepeatsOrSkips", testPagingDuringConcurrentWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			st, ob := OpenStore(t, db)
			tc.fn(t, &harness{st: st, ob: ob, db: db})
		})
	}
}

// t0 is the base time of the tests: microsecond precision, as both engines store.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

type harness struct {
	st *adapters.Store
	ob *outboxtest.Outbox
	db *database.DB
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// NewID returns a fresh UUIDv7, failing tb if none can be made.
func NewID(tb testing.TB) string {
	tb.Helper()
	id, err := domain.NewID()
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func envelope(t testing.TB, typ, aggregate string, payload any) events.Envelope {
	t.Helper()
	env, err := events.New(typ, aggregate, "post-service", payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (h *harness) tryPost(t *testing.T, author, text string, at time.Time) (domain.Post, error) {
	t.Helper()
	p := domain.Post{ID: NewID(t), AuthorID: author, Text: text, CreatedAt: at}
	err := h.st.CreatePost(ctxFor(t), p, envelope(t, eventsv1.PostCreated, author,
		eventsv1.PostCreatedPayload{PostID: p.ID, AuthorID: author, Text: text, At: at}))
	return p, err
}

func (h *harness) post(t *testing.T, author, text string, at time.Time) domain.Post {
	t.Helper()
	p, err := h.tryPost(t, author, text, at)
	if err != nil {
		t.Fatalf("create post: %v", err)
	}
	return p
}

func (h *harness) tryLike(t *testing.T, p domain.Post, liker string) (bool, error) {
	t.Helper()
	return h.st.Like(ctxFor(t), p.ID, liker, t0.Add(time.Minute), envelope(t, eventsv1.PostLiked, p.AuthorID,
		eventsv1.PostLikedPayload{PostID: p.ID, AuthorID: p.AuthorID, LikerID: liker}))
}

func (h *harness) like(t *testing.T, p domain.Post, liker string) bool {
	t.Helper()
	added, err := h.tryLike(t, p, liker)
	if err != nil {
		t.Fatalf("like: %v", err)
	}
	return added
}

func (h *harness) tryComment(t *testing.T, p domain.Post, author, text string, at time.Time) (domain.Comment, error) {
	t.Helper()
	c := domain.Comment{ID: NewID(t), PostID: p.ID, AuthorID: author, Text: text, CreatedAt: at}
	err := h.st.AddComment(ctxFor(t), c, envelope(t, eventsv1.PostCommented, p.AuthorID,
		eventsv1.PostCommentedPayload{PostID: p.ID, AuthorID: p.AuthorID, CommentID: c.ID, CommenterID: author, Text: text}))
	return c, err
}

func (h *harness) comment(t *testing.T, p domain.Post, author, text string, at time.Time) domain.Comment {
	t.Helper()
	c, err := h.tryComment(t, p, author, text, at)
	if err != nil {
		t.Fatalf("comment: %v", err)
	}
	return c
}

func (h *harness) read(t *testing.T, id, viewer string) domain.Post {
	t.Helper()
	p, err := h.st.Post(ctxFor(t), id, viewer)
	if err != nil {
		t.Fatalf("read post %s: %v", id, err)
	}
	return p
}

func (h *harness) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := h.db.SQL().QueryRowContext(ctxFor(t), q, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return n
}

// checkCounts asserts that a post's counters equal its like and comment rows, and returns
// them.
func (h *harness) checkCounts(t *testing.T, postID string) (likes, comments int64) {
	t.Helper()
	p := h.read(t, postID, "")
	likes = h.count(t, `SELECT count(*) FROM likes WHERE post_id = $1`, postID)
	comments = h.count(t, `SELECT count(*) FROM comments WHERE post_id = $1`, postID)
	if p.LikeCount != likes || p.CommentCount != comments {
		t.Errorf("post %s: counters likes=%d comments=%d, rows likes=%d comments=%d",
			postID, p.LikeCount, p.CommentCount, likes, comments)
	}
	return likes, comments
}

// events returns the committed events, checking that each went to the posts topic.
func (h *harness) events(t *testing.T) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for _, e := range h.ob.Events(t) {
		if e.Topic != eventsv1.TopicPosts {
			t.Errorf("event %s on topic %q, want %q", e.Envelope.Type, e.Topic, eventsv1.TopicPosts)
		}
		out = append(out, e.Envelope)
	}
	return out
}

func (h *harness) eventTypes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range h.events(t) {
		out = append(out, e.Type)
	}
	return out
}

// parallel runs fn(i) for i in [0,n) concurrently, started together, and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func postID(p domain.Post) string       { return p.ID }
func commentID(c domain.Comment) string { return c.ID }

// newestFirst sorts posts as the timelines list them.
func newestFirst(ps []domain.Post) {
	slices.SortFunc(ps, func(x, y domain.Post) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
}

// ---------------------------------------------------------------------------------- posts

func testCreateAndRead(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice := NewID(t)
	text := "Hello, ✌️ world\nsecond line"
	p := h.post(t, alice, text, t0)

	got := h.read(t, p.ID, "")
	if got.ID != p.ID || got.AuthorID != alice || got.Text != text || !got.CreatedAt.Equal(t0) ||
		got.CreatedAt.Location() != time.UTC || got.LikeCount != 0 || got.CommentCount != 0 || got.LikedByMe {
		t.Errorf("read back %+v", got)
	}
	for name, id := range map[string]string{"unknown id": NewID(t), "malformed id": "not-a-uuid", "empty id": ""} {
		if _, err := h.st.Post(ctx, id, alice); !errors.Is(err, domain.ErrPostNotFound) {
			t.Errorf("%s: err = %v, want ErrPostNotFound", name, err)
		}
	}
	evs := h.events(t)
	if len(evs) != 1 || evs[0].Type != eventsv1.PostCreated || evs[0].AggregateID != alice {
		t.Fatalf("events = %+v, want one post.created keyed by the author", evs)
	}
	var payload eventsv1.PostCreatedPayload
	if err := evs[0].DecodePayload(&payload); err != nil || payload.PostID != p.ID || payload.Text != text {
		t.Errorf("payload %+v, %v", payload, err)
	}
	if k := h.ob.Kicks(); k != 1 {
		t.Errorf("outbox kicked %d times, want 1", k)
	}
}

func testDelete(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob := NewID(t), NewID(t)
	p := h.post(t, alice, "to be deleted", t0)
	other := h.post(t, alice, "stays", t0.Add(time.Second))
	h.like(t, p, bob)
	h.like(t, p, alice)
	h.like(t, other, bob)
	h.comment(t, p, bob, "nice", t0.Add(time.Minute))
	h.comment(t, other, bob, "also nice", t0.Add(time.Minute))
	before := len(h.events(t))

	del := func(id, by string) error {
		return h.st.DeletePost(ctx, id, by, envelope(t, eventsv1.PostDeleted, by, eventsv1.PostDeletedPayload{PostID: id, AuthorID: by}))
	}
	for _, who := range []string{bob, "not-a-uuid"} {
		if err := del(p.ID, who); !errors.Is(err, domain.ErrNotAuthor) {
			t.Fatalf("deletion by %q: %v, want ErrNotAuthor", who, err)
		}
	}
	if got := h.read(t, p.ID, ""); got.LikeCount != 2 || got.CommentCount != 1 {
		t.Fatalf("a refused deletion changed the post: %+v", got)
	}
	if err := del(p.ID, alice); err != nil {
		t.Fatalf("deletion by the author: %v", err)
	}
	if _, err := h.st.Post(ctx, p.ID, ""); !errors.Is(err, domain.ErrPostNotFound) {
		t.Fatalf("deleted post still reads: %v", err)
	}
	if n := h.count(t, `SELECT count(*) FROM likes WHERE post_id = $1`, p.ID) + h.count(t, `SELECT count(*) FROM comments WHERE post_id = $1`, p.ID); n != 0 {
		t.Errorf("%d likes and comments of the deleted post remain", n)
	}
	if l, c := h.checkCounts(t, other.ID); l != 1 || c != 1 {
		t.Errorf("the other post lost its likes or comments: %d, %d", l, c)
	}

	// The deleted post is gone for every action.
	for name, err := range map[string]error{
		"delete again": del(p.ID, alice),
		"like":         func() error { _, err := h.tryLike(t, p, bob); return err }(),
		"unlike":       func() error { _, err := h.st.Unlike(ctx, p.ID, bob); return err }(),
		"comment":      func() error { _, err := h.tryComment(t, p, bob, "hello?", t0.Add(time.Hour)); return err }(),
		"list comments": func() error {
			_, err := h.st.ListComments(ctx, p.ID, domain.Cursor{}, 10)
			return err
		}(),
		"delete unknown":   del(NewID(t), alice),
		"delete malformed": del("nope", alice),
	} {
		if !errors.Is(err, domain.ErrPostNotFound) {
			t.Errorf("%s: %v, want ErrPostNotFound", name, err)
		}
	}
	evs := h.events(t)[before:]
	if len(evs) != 1 || evs[0].Type != eventsv1.PostDeleted || evs[0].AggregateID != alice {
		t.Errorf("events after the likes and comments: %+v, want exactly one post.deleted", evs)
	}
}

// ---------------------------------------------------------------------------------- likes

func testLikeIdempotent(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob := NewID(t), NewID(t)
	p := h.post(t, alice, "like me", t0)

	if !h.like(t, p, bob) {
		t.Fatal("first like not reported as new")
	}
	if h.like(t, p, bob) {
		t.Fatal("repeated like reported as new")
	}
	if l, _ := h.checkCounts(t, p.ID); l != 1 {
		t.Fatalf("%d likes after a repeated like, want 1", l)
	}
	if removed, err := h.st.Unlike(ctx, p.ID, bob); err != nil || !removed {
		t.Fatalf("unlike: %v, %v", removed, err)
	}
	if removed, err := h.st.Unlike(ctx, p.ID, bob); err != nil || removed {
		t.Fatalf("repeated unlike: %v, %v", removed, err)
	}
	if l, _ := h.checkCounts(t, p.ID); l != 0 {
		t.Fatalf("%d likes after unliking, want 0", l)
	}
	if !h.like(t, p, bob) {
		t.Fatal("a like after an unlike is not new")
	}
	if got := h.eventTypes(t); !slices.Equal(got, []string{eventsv1.PostCreated, eventsv1.PostLiked, eventsv1.PostLiked}) {
		t.Errorf("events = %v, want post.created and one post.liked per new like", got)
	}
	for name, id := range map[string]string{"unknown": NewID(t), "malformed": "x"} {
		if _, err := h.st.Like(ctx, id, bob, t0); !errors.Is(err, domain.ErrPostNotFound) {
			t.Errorf("like %s post: %v, want ErrPostNotFound", name, err)
		}
		if _, err := h.st.Unlike(ctx, id, bob); !errors.Is(err, domain.ErrPostNotFound) {
			t.Errorf("unlike %s post: %v, want ErrPostNotFound", name, err)
		}
	}
	if _, err := h.st.Like(ctx, p.ID, "not-a-user-id", t0); !errors.Is(err, domain.ErrIDInvalid) {
		t.Errorf("like by a malformed user id: %v, want ErrIDInvalid", err)
	}
}

func testConcurrentLikes(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	p := h.post(t, NewID(t), "popular", t0)
	const users = 40
	likers := make([]string, users)
	for i := range likers {
		likers[i] = NewID(t)
	}
	// Every user likes twice at once; the first half also unlikes, racing their own likes.
	var (
		mu    sync.Mutex
		added int
	)
	errs := parallel(3*users, func(i int) error {
		u := likers[i%users]
		if i >= 2*users {
			if i%users >= users/2 {
				return nil
			}
			_, err := h.st.Unlike(ctx, p.ID, u)
			return err
		}
		ok, err := h.tryLike(t, p, u)
		if ok {
			mu.Lock()
			added++
			mu.Unlock()
		}
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	likes, _ := h.checkCounts(t, p.ID)
	if likes < users/2 || likes > users {
		t.Errorf("%d likes, want between %d and %d", likes, users/2, users)
	}
	liked := h.count(t, `SELECT count(*) FROM likes WHERE post_id = $1`, p.ID)
	if n := int64(len(h.events(t)) - 1); n != int64(added) {
		t.Errorf("%d post.liked events for %d new likes", n, added)
	}
	// Settle: the racing unlikes run again, then every like once more. Counts end exact.
	for _, u := range likers[:users/2] {
		if _, err := h.st.Unlike(ctx, p.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := h.checkCounts(t, p.ID); l != users/2 {
		t.Errorf("after the unlikes: %d likes, want %d (had %d)", l, users/2, liked)
	}
	errs = parallel(users, func(i int) error { _, err := h.tryLike(t, p, likers[i]); return err })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.checkCounts(t, p.ID); l != users {
		t.Errorf("after everyone liked: %d likes, want %d", l, users)
	}
}

func testConcurrentComments(t *testing.T, h *harness) {
	p := h.post(t, NewID(t), "discuss", t0)
	const n = 30
	errs := parallel(n, func(i int) error {
		_, err := h.tryComment(t, p, NewID(t), fmt.Sprintf("comment %d", i), t0.Add(time.Duration(i)*time.Millisecond))
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, c := h.checkCounts(t, p.ID); c != n {
		t.Errorf("%d comments, want %d", c, n)
	}
	types := h.eventTypes(t)
	if len(types) != n+1 || slices.ContainsFunc(types[1:], func(s string) bool { return s != eventsv1.PostCommented }) {
		t.Errorf("events = %v, want post.created then %d post.commented", types, n)
	}
}

func testDeleteRace(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice := NewID(t)
	p := h.post(t, alice, "short-lived", t0)
	const n = 24
	errs := parallel(n+1, func(i int) error {
		var err error
		switch {
		case i == n/2:
			err = h.st.DeletePost(ctx, p.ID, alice, envelope(t, eventsv1.PostDeleted, alice, eventsv1.PostDeletedPayload{PostID: p.ID, AuthorID: alice}))
		case i%2 == 0:
			_, err = h.tryLike(t, p, NewID(t))
		default:
			_, err = h.tryComment(t, p, NewID(t), "quick", t0.Add(time.Second))
		}
		if errors.Is(err, domain.ErrPostNotFound) && i != n/2 {
			return nil // came after the deletion
		}
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if rows := h.count(t, `SELECT count(*) FROM likes WHERE post_id = $1`, p.ID) + h.count(t, `SELECT count(*) FROM comments WHERE post_id = $1`, p.ID); rows != 0 {
		t.Errorf("%d likes and comments outlived their post", rows)
	}
	types := h.eventTypes(t)
	if len(types) < 2 || types[0] != eventsv1.PostCreated || types[len(types)-1] != eventsv1.PostDeleted {
		t.Errorf("events %v: want post.created first and post.deleted last", types)
	}
}

func testOutboxFailure(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob := NewID(t), NewID(t)
	p := h.post(t, alice, "kept", t0)
	kicks := h.ob.Kicks()

	h.ob.FailWith(errors.New("outbox down"))
	failed, err := h.tryPost(t, alice, "lost", t0.Add(time.Second))
	if err == nil {
		t.Fatal("post created although its event could not be recorded")
	}
	if _, err := h.st.Post(ctx, failed.ID, ""); !errors.Is(err, domain.ErrPostNotFound) {
		t.Errorf("the failed post exists: %v", err)
	}
	if _, err := h.tryLike(t, p, bob); err == nil {
		t.Error("like succeeded although its event could not be recorded")
	}
	if _, err := h.tryComment(t, p, bob, "lost", t0.Add(time.Second)); err == nil {
		t.Error("comment succeeded although its event could not be recorded")
	}
	if err := h.st.DeletePost(ctx, p.ID, alice, envelope(t, eventsv1.PostDeleted, alice, eventsv1.PostDeletedPayload{PostID: p.ID, AuthorID: alice})); err == nil {
		t.Error("deletion succeeded although its event could not be recorded")
	}
	if l, c := h.checkCounts(t, p.ID); l != 0 || c != 0 {
		t.Errorf("rolled-back changes left %d likes and %d comments", l, c)
	}
	if k := h.ob.Kicks(); k != kicks {
		t.Errorf("outbox kicked %d times for rolled-back changes", k-kicks)
	}
	h.ob.FailWith(nil)
	if !h.like(t, p, bob) {
		t.Error("the like after the failure is not new")
	}
	if got := h.eventTypes(t); !slices.Equal(got, []string{eventsv1.PostCreated, eventsv1.PostLiked}) {
		t.Errorf("events = %v", got)
	}
}

func testLikedByMe(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob, carol := NewID(t), NewID(t), NewID(t)
	var posts []domain.Post
	for i := range 5 {
		posts = append(posts, h.post(t, alice, fmt.Sprintf("post %d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	h.like(t, posts[1], bob)
	h.like(t, posts[3], bob)
	h.like(t, posts[3], carol)

	for _, tc := range []struct {
		viewer string
		want   []bool // newest first: posts 4..0
	}{
		{bob, []bool{false, true, false, true, false}},
		{carol, []bool{false, true, false, false, false}},
		{alice, []bool{false, false, false, false, false}},
		{"", []bool{false, false, false, false, false}},
	} {
		page, err := h.st.ListUserPosts(ctx, alice, tc.viewer, domain.Cursor{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(page.Posts, func(p domain.Post) string { return fmt.Sprint(p.LikedByMe) })
		if want := ids(tc.want, func(b bool) string { return fmt.Sprint(b) }); !slices.Equal(got, want) {
			t.Errorf("viewer %q: liked %v, want %v", tc.viewer, got, want)
		}
		if p := h.read(t, posts[3].ID, tc.viewer); p.LikedByMe != tc.want[1] || p.LikeCount != 2 {
			t.Errorf("viewer %q reading one post: %+v", tc.viewer, p)
		}
	}
}

// ---------------------------------------------------------------------------------- pages

func testListComments(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	p := h.post(t, NewID(t), "thread", t0)
	var want []domain.Comment
	for i := range 25 {
		at := t0.Add(time.Duration(i) * time.Second)
		if i >= 22 { // a few in the same microsecond: the id breaks the tie
			at = t0.Add(22 * time.Second)
		}
		want = append(want, h.comment(t, p, NewID(t), fmt.Sprintf("c%02d", i), at))
	}
	var got []domain.Comment
	cursor := ""
	for page := 0; ; page++ {
		after, err := domain.ParseCursor(cursor) // the cursor travels through the client as text
		if err != nil {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		pg, err := h.st.ListComments(ctx, p.ID, after, 10)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		got = append(got, pg.Comments...)
		if pg.Next.IsZero() {
			break
		}
		cursor = pg.Next.Encode()
		// A comment arrives between pages: it is newer than everything, so it comes last.
		want = append(want, h.comment(t, p, NewID(t), fmt.Sprintf("late%d", page), t0.Add(time.Hour+time.Duration(page)*time.Second)))
		if page > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if g, w := ids(got, commentID), ids(want, commentID); !slices.Equal(g, w) {
		t.Fatalf("paged comments:\n got %v\nwant %v", g, w)
	}
	if c := got[0]; c.PostID != p.ID || c.Text != "c00" || c.AuthorID == "" || !c.CreatedAt.Equal(t0) {
		t.Errorf("first comment %+v", c)
	}
	all, err := h.st.ListComments(ctx, p.ID, domain.Cursor{}, len(want))
	if err != nil || len(all.Comments) != len(want) || !all.Next.IsZero() {
		t.Errorf("one page of exactly everything: %d comments, next %+v, %v", len(all.Comments), all.Next, err)
	}
	empty := h.post(t, NewID(t), "no comments", t0)
	if pg, err := h.st.ListComments(ctx, empty.ID, domain.Cursor{}, 10); err != nil || len(pg.Comments) != 0 || !pg.Next.IsZero() {
		t.Errorf("post without comments: %+v, %v", pg, err)
	}
}

// pageAll pages through list with pages of size, calling between(page) after each page that
// has a successor, and returns every listed post and the page sizes.
func pageAll(t *testing.T, size int, list func(after domain.Cursor, limit int) (domain.PostPage, error), between func(page int)) (got []domain.Post, sizes []int) {
	t.Helper()
	cursor := ""
	for page := 0; ; page++ {
		after, err := domain.ParseCursor(cursor)
		if err != nil {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		pg, err := list(after, size)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		got = append(got, pg.Posts...)
		sizes = append(sizes, len(pg.Posts))
		if pg.Next.IsZero() {
			return got, sizes
		}
		cursor = pg.Next.Encode()
		if between != nil {
			between(page)
		}
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
	}
}

func testListUserPosts(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob := NewID(t), NewID(t)
	var want []domain.Post
	for i := range 25 {
		at := t0.Add(time.Duration(i) * time.Second)
		if i >= 22 {
			at = t0.Add(22 * time.Second)
		}
		want = append(want, h.post(t, alice, fmt.Sprintf("p%02d", i), at))
		h.post(t, bob, "bob's", at) // someone else's posts interleave and must not show
	}
	newestFirst(want)
	list := func(after domain.Cursor, limit int) (domain.PostPage, error) {
		return h.st.ListUserPosts(ctx, alice, "", after, limit)
	}
	var late []domain.Post
	got, sizes := pageAll(t, 10, list, func(page int) {
		// New posts arrive between pages; they are newer than everything listed so far.
		late = append(late, h.post(t, alice, fmt.Sprintf("late%d", page), t0.Add(time.Hour+time.Duration(page)*time.Second)))
	})
	if g, w := ids(got, postID), ids(want, postID); !slices.Equal(g, w) {
		t.Fatalf("paged posts:\n got %v\nwant %v", g, w)
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", sizes)
	}
	first, err := list(domain.Cursor{}, 2)
	if err != nil || len(first.Posts) != 2 || first.Posts[0].ID != late[1].ID || first.Posts[1].ID != late[0].ID {
		t.Errorf("first page after the inserts: %v, %v", first.Posts, err)
	}
	all, err := list(domain.Cursor{}, 27)
	if err != nil || len(all.Posts) != 27 || !all.Next.IsZero() {
		t.Errorf("one page of exactly everything: %d posts, next %+v, %v", len(all.Posts), all.Next, err)
	}
	for name, author := range map[string]string{"unknown": NewID(t), "malformed": "nobody"} {
		if pg, err := h.st.ListUserPosts(ctx, author, "", domain.Cursor{}, 10); err != nil || len(pg.Posts) != 0 {
			t.Errorf("%s author: %v, %v", name, pg.Posts, err)
		}
	}
}

func testHomeTimeline(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	viewer := NewID(t)
	followed := []string{NewID(t), NewID(t), NewID(t)}
	stranger := NewID(t)
	var want []domain.Post
	for i := range 30 {
		at := t0.Add(time.Duration(i/2) * time.Second) // pairs share a timestamp
		want = append(want, h.post(t, followed[i%3], fmt.Sprintf("p%02d", i), at))
		h.post(t, stranger, "not followed", at.Add(time.Millisecond))
		h.post(t, viewer, "my own", at)
	}
	newestFirst(want)
	h.like(t, want[0], viewer)
	h.like(t, want[11], viewer)

	// Repeats and malformed ids in the followee list are harmless.
	authors := append(slices.Clone(followed), followed[0], "garbage", "")
	list := func(after domain.Cursor, limit int) (domain.PostPage, error) {
		return h.st.HomeTimeline(ctx, authors, viewer, after, limit)
	}
	got, sizes := pageAll(t, 7, list, func(page int) {
		h.post(t, followed[page%3], "late", t0.Add(time.Hour+time.Duration(page)*time.Second))
	})
	if g, w := ids(got, postID), ids(want, postID); !slices.Equal(g, w) {
		t.Fatalf("paged timeline:\n got %v\nwant %v", g, w)
	}
	if !slices.Equal(sizes, []int{7, 7, 7, 7, 2}) {
		t.Errorf("page sizes %v", sizes)
	}
	for i, p := range got {
		if p.LikedByMe != (i == 0 || i == 11) {
			t.Errorf("post %d: liked_by_me %v", i, p.LikedByMe)
		}
	}
	if got[0].LikeCount != 1 || got[0].Text == "" || got[0].AuthorID == "" {
		t.Errorf("timeline post lacks its fields: %+v", got[0])
	}
	for name, a := range map[string][]string{"no followees": nil, "only garbage": {"x", ""}, "followees without posts": {NewID(t)}} {
		if pg, err := h.st.HomeTimeline(ctx, a, viewer, domain.Cursor{}, 10); err != nil || len(pg.Posts) != 0 || !pg.Next.IsZero() {
			t.Errorf("%s: %+v, %v", name, pg, err)
		}
	}
	// The follow limit's worth of followees is one query like any other.
	many := make([]string, 5000)
	for i := range many {
		many[i] = NewID(t)
	}
	many[4321] = followed[1]
	pg, err := h.st.HomeTimeline(ctx, many, "", domain.Cursor{}, 100)
	if err != nil || len(pg.Posts) != 11 || slices.ContainsFunc(pg.Posts, func(p domain.Post) bool { return p.AuthorID != followed[1] }) {
		t.Errorf("5000 followees, one of them with 11 posts: %d posts, %v", len(pg.Posts), err)
	}
}

// testPagingDuringConcurrentWrites pages through a timeline while another goroutine keeps
// posting (newer posts, as real clocks make them). The walk lists, newest first and each once,
// the posts that existed when it began: the concurrent posts committed before the first page
// was read (all of them, from the oldest on: none skipped) and every post from before; none
// written later.
func testPagingDuringConcurrentWrites(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	authors := []string{NewID(t), NewID(t)}
	var want []domain.Post
	for i := range 40 {
		want = append(want, h.post(t, authors[i%2], "before", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	newestFirst(want)

	var (
		mu       sync.Mutex
		written  []string // the concurrent posts, oldest first
		writeErr error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p, err := h.tryPost(t, authors[i%2], "during", t0.Add(time.Hour+time.Duration(i)*time.Millisecond))
			mu.Lock()
			written, writeErr = append(written, p.ID), err
			mu.Unlock()
			if err != nil {
				return
			}
		}
	})
	got, _ := pageAll(t, 3, func(after domain.Cursor, limit int) (domain.PostPage, error) {
		return h.st.HomeTimeline(ctx, authors, "", after, limit)
	}, nil)
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	var during []string
	for len(got) > 0 && got[0].Text == "during" {
		during = append(during, got[0].ID)
		got = got[1:]
	}
	if len(during) > len(written) {
		t.Fatalf("%d concurrent posts listed, %d written", len(during), len(written))
	}
	wantDuring := slices.Clone(written[:len(during)])
	slices.Reverse(wantDuring)
	if !slices.Equal(during, wantDuring) {
		t.Errorf("concurrent posts listed:\n got %v\nwant %v (the oldest %d written, newest first)", during, wantDuring, len(during))
	}
	if g, w := ids(got, postID), ids(want, postID); !slices.Equal(g, w) {
		t.Fatalf("paged while writing:\n got %v\nwant %v", g, w)
	}
}
