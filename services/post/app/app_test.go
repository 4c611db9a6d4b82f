package app_test

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
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/post/adapters/storetest"
	"github.com/piazza-social/piazza/services/post/app"
	"github.com/piazza-social/piazza/services/post/domain"
)

// ---------------------------------------------------------------------------------- fakes

// clock moves one millisecond each time it is read, so that every post is newer than the last.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// graph is a FollowGraph from a map, counting its calls.
type graph struct {
	mu      sync.Mutex
	follows map[string][]string
	err     error
	calls   int
}

func (g *graph) FollowedIDs(_ context.Context, userID string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.err != nil {
		return nil, g.err
	}
	return slices.Clone(g.follows[userID]), nil
}

func (g *graph) follow(follower string, followees ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.follows[follower] = append(g.follows[follower], followees...)
}

type env struct {
	app    *app.Application
	graph  *graph
	outbox *outboxtest.Outbox
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, ob, _ := storetest.OpenSQLiteStore(t)
	e := &env{graph: &graph{follows: map[string][]string{}}, outbox: ob}
	clk := &clock{now: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	var err error
	e.app, err = app.New(app.Config{Now: clk.Now}, app.Deps{Store: st, Follows: e.graph}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func user(t *testing.T) string { return storetest.NewID(t) }

func (e *env) post(t *testing.T, author, text string) domain.Post {
	t.Helper()
	p, err := e.app.CreatePost.Handle(t.Context(), app.CreatePost{CallerID: author, Text: text})
	if err != nil {
		t.Fatalf("create post: %v", err)
	}
	return p
}

func (e *env) events(t *testing.T) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for _, ev := range e.outbox.Events(t) {
		if ev.Topic != eventsv1.TopicPosts {
			t.Errorf("event %s on topic %q", ev.Envelope.Type, ev.Topic)
		}
		out = append(out, ev.Envelope)
	}
	return out
}

func (e *env) eventTypes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, ev := range e.events(t) {
		out = append(out, ev.Type)
	}
	return out
}

// wantErr asserts that err is an *errs.Error with code and, if given, exactly these field
// pointers.
func wantErr(t *testing.T, err error, code errs.Code, pointers ...string) {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("err = %v (%T), want *errs.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, code)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Pointer)
		if f.Detail == "" {
			t.Errorf("field %s has no detail", f.Pointer)
		}
	}
	if !slices.Equal(got, pointers) {
		t.Fatalf("field pointers %v, want %v", got, pointers)
	}
}

func texts(ps []domain.Post) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Text
	}
	return out
}

// ---------------------------------------------------------------------------------- tests

func TestNewRefusesMissingDependencies(t *testing.T) {
	st, _, _ := storetest.OpenSQLiteStore(t)
	if _, err := app.New(app.Config{}, app.Deps{Store: st}, nil); err == nil {
		t.Error("New without a follow graph succeeded")
	}
	if _, err := app.New(app.Config{}, app.Deps{Follows: &graph{}}, nil); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestCreatePostStoresTrimmedTextAndEmitsPostCreatedKeyedByTheAuthor(t *testing.T) {
	e := newEnv(t)
	alice := user(t)
	p := e.post(t, alice, "  \n hello ✌️ world \t")
	if p.Text != "hello ✌️ world" || p.AuthorID != alice || !domain.ValidID(p.ID) || p.CreatedAt.IsZero() {
		t.Fatalf("created %+v", p)
	}
	got, err := e.app.GetPost.Handle(t.Context(), app.GetPost{ID: p.ID})
	if err != nil || got != p {
		t.Fatalf("read back %+v, %v; want %+v", got, err, p)
	}
	evs := e.events(t)
	if len(evs) != 1 || evs[0].Type != eventsv1.PostCreated || evs[0].AggregateID != alice || evs[0].Producer != app.Producer {
		t.Fatalf("events %+v", evs)
	}
	var payload eventsv1.PostCreatedPayload
	if err := evs[0].DecodePayload(&payload); err != nil ||
		payload != (eventsv1.PostCreatedPayload{PostID: p.ID, AuthorID: alice, Text: p.Text, At: p.CreatedAt}) {
		t.Errorf("payload %+v, %v", payload, err)
	}
}

func TestTextMustHaveOneTo500CharactersAfterTrimming(t *testing.T) {
	e := newEnv(t)
	alice := user(t)
	target := e.post(t, alice, "target")
	for _, tc := range []struct {
		name string
		text string
		ok   bool
	}{
		{"empty", "", false},
		{"only white space", " \n\t ", false},
		{"501 characters", strings.Repeat("x", 501), false},
		{"500 characters of 3 bytes", strings.Repeat("✌", 500), true},
		{"500 characters padded", "  " + strings.Repeat("y", 500) + "  ", true},
		{"NUL", "a\x00b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := e.app.CreatePost.Handle(t.Context(), app.CreatePost{CallerID: alice, Text: tc.text})
			_, cerr := e.app.AddComment.Handle(t.Context(), app.AddComment{PostID: target.ID, CallerID: alice, Text: tc.text})
			for what, err := range map[string]error{"post": perr, "comment": cerr} {
				if tc.ok && err != nil {
					t.Errorf("%s: %v", what, err)
				}
				if !tc.ok {
					wantErr(t, err, errs.ValidationFailed, "/text")
				}
			}
		})
	}
}

func TestMalformedIDsAreValidationErrorsOrNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice := user(t)
	p := e.post(t, alice, "hello")

	_, err := e.app.CreatePost.Handle(ctx, app.CreatePost{CallerID: "", Text: ""})
	wantErr(t, err, errs.ValidationFailed, "/caller_id", "/text")
	_, err = e.app.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: "nope"})
	wantErr(t, err, errs.ValidationFailed, "/caller_id")
	_, err = e.app.GetPost.Handle(ctx, app.GetPost{ID: p.ID, CallerID: "NOPE"})
	wantErr(t, err, errs.ValidationFailed, "/caller_id")
	_, err = e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: "alice", Cursor: "%%", Limit: 101})
	wantErr(t, err, errs.ValidationFailed, "/author_id", "/limit", "/cursor")
	// A malformed post id names no post.
	_, err = e.app.GetPost.Handle(ctx, app.GetPost{ID: "not-a-post"})
	wantErr(t, err, errs.NotFound)
}

func TestOnlyTheAuthorDeletesAndTheDeletedPostIsGoneEverywhere(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob := user(t), user(t)
	p := e.post(t, alice, "mine")
	if _, err := e.app.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: bob}); err != nil {
		t.Fatal(err)
	}

	_, err := e.app.DeletePost.Handle(ctx, app.DeletePost{ID: p.ID, CallerID: bob})
	wantErr(t, err, errs.Forbidden)
	_, err = e.app.DeletePost.Handle(ctx, app.DeletePost{ID: user(t), CallerID: alice})
	wantErr(t, err, errs.NotFound)
	if _, err := e.app.DeletePost.Handle(ctx, app.DeletePost{ID: p.ID, CallerID: alice}); err != nil {
		t.Fatalf("the author's deletion: %v", err)
	}
	for name, call := range map[string]func() error{
		"get": func() error { _, err := e.app.GetPost.Handle(ctx, app.GetPost{ID: p.ID}); return err },
		"delete again": func() error {
			_, err := e.app.DeletePost.Handle(ctx, app.DeletePost{ID: p.ID, CallerID: alice})
			return err
		},
		"like": func() error { _, err := e.app.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: bob}); return err },
		"unlike": func() error {
			_, err := e.app.UnlikePost.Handle(ctx, app.UnlikePost{ID: p.ID, CallerID: bob})
			return err
		},
		"list comments": func() error { _, err := e.app.ListComments.Handle(ctx, app.ListComments{PostID: p.ID}); return err },
		"comment": func() error {
			_, err := e.app.AddComment.Handle(ctx, app.AddComment{PostID: p.ID, CallerID: bob, Text: "hi"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, call(), errs.NotFound) })
	}
	evs := e.events(t)
	if got := e.eventTypes(t); !slices.Equal(got, []string{eventsv1.PostCreated, eventsv1.PostLiked, eventsv1.PostDeleted}) {
		t.Fatalf("events %v", got)
	}
	var payload eventsv1.PostDeletedPayload
	if err := evs[2].DecodePayload(&payload); err != nil || payload.PostID != p.ID || payload.AuthorID != alice || evs[2].AggregateID != alice {
		t.Errorf("post.deleted %+v, payload %+v, %v", evs[2], payload, err)
	}
}

func TestLikesAreIdempotentAndOnlyANewLikeEmitsPostLiked(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob := user(t), user(t)
	p := e.post(t, alice, "like me")
	like := func() {
		t.Helper()
		if _, err := e.app.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: bob}); err != nil {
			t.Fatal(err)
		}
	}
	unlike := func() {
		t.Helper()
		if _, err := e.app.UnlikePost.Handle(ctx, app.UnlikePost{ID: p.ID, CallerID: bob}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(viewer string) domain.Post {
		t.Helper()
		got, err := e.app.GetPost.Handle(ctx, app.GetPost{ID: p.ID, CallerID: viewer})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	like()
	like()
	if got := read(bob); got.LikeCount != 1 || !got.LikedByMe {
		t.Fatalf("after a repeated like: %+v", got)
	}
	if got := read(alice); got.LikedByMe {
		t.Error("liked_by_me is true for someone who did not like")
	}
	unlike()
	unlike()
	if got := read(bob); got.LikeCount != 0 || got.LikedByMe {
		t.Fatalf("after a repeated unlike: %+v", got)
	}
	like()
	types := e.eventTypes(t)
	if !slices.Equal(types, []string{eventsv1.PostCreated, eventsv1.PostLiked, eventsv1.PostLiked}) {
		t.Fatalf("events %v: want one post.liked per new like, none for repeats or unlikes", types)
	}
	ev := e.events(t)[1]
	var payload eventsv1.PostLikedPayload
	if err := ev.DecodePayload(&payload); err != nil || ev.AggregateID != alice ||
		payload != (eventsv1.PostLikedPayload{PostID: p.ID, AuthorID: alice, LikerID: bob}) {
		t.Errorf("post.liked %+v, payload %+v, %v", ev, payload, err)
	}
	for name, call := range map[string]func() error{
		"like": func() error {
			_, err := e.app.LikePost.Handle(ctx, app.LikePost{ID: user(t), CallerID: bob})
			return err
		},
		"unlike": func() error {
			_, err := e.app.UnlikePost.Handle(ctx, app.UnlikePost{ID: user(t), CallerID: bob})
			return err
		},
	} {
		t.Run(name+" unknown post", func(t *testing.T) { wantErr(t, call(), errs.NotFound) })
	}
}

func TestCommentsListOldestFirstThroughOpaqueCursorsAndEmitPostCommented(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob := user(t), user(t)
	p := e.post(t, alice, "discuss")
	var want []string
	for i := range 7 {
		c, err := e.app.AddComment.Handle(ctx, app.AddComment{PostID: p.ID, CallerID: bob, Text: fmt.Sprintf(" c%d ", i)})
		if err != nil {
			t.Fatal(err)
		}
		if c.Text != fmt.Sprintf("c%d", i) || c.AuthorID != bob || c.PostID != p.ID {
			t.Fatalf("comment %+v", c)
		}
		want = append(want, c.Text)
	}
	var got []string
	cursor := ""
	for {
		page, err := e.app.ListComments.Handle(ctx, app.ListComments{PostID: p.ID, Cursor: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Comments {
			got = append(got, c.Text)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("comments %v, want %v", got, want)
	}
	if got, err := e.app.GetPost.Handle(ctx, app.GetPost{ID: p.ID}); err != nil || got.CommentCount != 7 {
		t.Errorf("comment count %d, %v", got.CommentCount, err)
	}
	_, err := e.app.ListComments.Handle(ctx, app.ListComments{PostID: p.ID, Cursor: "bogus!", Limit: -1})
	wantErr(t, err, errs.ValidationFailed, "/limit", "/cursor")

	evs := e.events(t)
	if len(evs) != 8 {
		t.Fatalf("%d events, want post.created and 7 post.commented", len(evs))
	}
	var payload eventsv1.PostCommentedPayload
	if err := evs[1].DecodePayload(&payload); err != nil || evs[1].Type != eventsv1.PostCommented || evs[1].AggregateID != alice ||
		payload.PostID != p.ID || payload.AuthorID != alice || payload.CommenterID != bob || payload.Text != "c0" || !domain.ValidID(payload.CommentID) {
		t.Errorf("post.commented %+v, payload %+v, %v", evs[1], payload, err)
	}
}

func TestUserPostsPageNewestFirst(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob := user(t), user(t)
	for i := range 5 {
		e.post(t, alice, fmt.Sprintf("a%d", i))
		e.post(t, bob, fmt.Sprintf("b%d", i))
	}
	first, err := e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: alice, Limit: 3})
	if err != nil || !slices.Equal(texts(first.Posts), []string{"a4", "a3", "a2"}) || first.NextCursor == "" {
		t.Fatalf("first page %v, next %q, %v", texts(first.Posts), first.NextCursor, err)
	}
	second, err := e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: alice, Cursor: first.NextCursor, Limit: 3})
	if err != nil || !slices.Equal(texts(second.Posts), []string{"a1", "a0"}) || second.NextCursor != "" {
		t.Fatalf("second page %v, next %q, %v", texts(second.Posts), second.NextCursor, err)
	}
	all, err := e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: alice})
	if err != nil || len(all.Posts) != 5 {
		t.Errorf("default page: %d posts, %v", len(all.Posts), err)
	}
}

func TestHomeTimelineShowsTheFollowedAuthorsPostsNewestFirst(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	me, alice, bob, carol := user(t), user(t), user(t), user(t)
	e.graph.follow(me, alice, bob)
	for i := range 4 {
		e.post(t, alice, fmt.Sprintf("alice %d", i))
		e.post(t, carol, fmt.Sprintf("carol %d", i)) // not followed
		e.post(t, bob, fmt.Sprintf("bob %d", i))
		e.post(t, me, fmt.Sprintf("mine %d", i)) // the caller's own posts are not on it
	}
	var got []string
	cursor := ""
	for {
		page, err := e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: me, Cursor: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, texts(page.Posts)...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		// Following someone new shows at the next read; their posts are older than the cursor
		// here, so they come on later pages, where they belong by time.
		e.graph.follow(me, carol)
	}
	want := []string{"bob 3", "alice 3", "bob 2", "carol 2", "alice 2", "bob 1", "carol 1", "alice 1", "bob 0", "carol 0", "alice 0"}
	if !slices.Equal(got, want) {
		t.Fatalf("timeline %v\nwant %v", got, want)
	}

	lonely := user(t)
	if page, err := e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: lonely}); err != nil || len(page.Posts) != 0 || page.NextCursor != "" {
		t.Errorf("following nobody: %+v, %v", page, err)
	}
	_, err := e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: me, Cursor: "x", Limit: 500})
	wantErr(t, err, errs.ValidationFailed, "/limit", "/cursor")

	calls := e.graph.calls
	e.graph.err = errs.New(errs.Unavailable, "user-service is down")
	_, err = e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: me})
	wantErr(t, err, errs.Unavailable)
	e.graph.err = errors.New("connection reset by peer")
	_, err = e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: me})
	wantErr(t, err, errs.Internal)
	if e.graph.calls != calls+2 {
		t.Errorf("%d follow-graph calls for 2 timelines", e.graph.calls-calls)
	}
}

func TestLikedByMeFollowsTheCallerOnEveryList(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	me, alice := user(t), user(t)
	e.graph.follow(me, alice)
	var posts []domain.Post
	for i := range 4 {
		posts = append(posts, e.post(t, alice, fmt.Sprintf("p%d", i)))
	}
	for _, i := range []int{0, 2} {
		if _, err := e.app.LikePost.Handle(ctx, app.LikePost{ID: posts[i].ID, CallerID: me}); err != nil {
			t.Fatal(err)
		}
	}
	liked := func(ps []domain.Post) []bool {
		out := make([]bool, len(ps))
		for i, p := range ps {
			out[i] = p.LikedByMe
		}
		return out
	}
	want := []bool{false, true, false, true} // newest first: p3..p0
	home, err := e.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: me})
	if err != nil || !slices.Equal(liked(home.Posts), want) {
		t.Errorf("home timeline liked %v, %v; want %v", liked(home.Posts), err, want)
	}
	mine, err := e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: alice, CallerID: me})
	if err != nil || !slices.Equal(liked(mine.Posts), want) {
		t.Errorf("user posts liked %v, %v; want %v", liked(mine.Posts), err, want)
	}
	anon, err := e.app.ListUserPosts.Handle(ctx, app.ListUserPosts{AuthorID: alice})
	if err != nil || slices.Contains(liked(anon.Posts), true) {
		t.Errorf("without a caller: liked %v, %v", liked(anon.Posts), err)
	}
}

func TestEveryDomainErrorKindHasACode(t *testing.T) {
	for _, k := range domain.Kinds() {
		if app.CodeOf(k) == errs.Internal {
			t.Errorf("kind %d maps to internal", k)
		}
	}
}
