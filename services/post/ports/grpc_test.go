package ports_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/post"
	"github.com/piazza-social/piazza/services/post/adapters/storetest"
)

// graph is a follow graph from a map.
type graph struct {
	mu      sync.Mutex
	follows map[string][]string
}

func (g *graph) FollowedIDs(_ context.Context, userID string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.follows[userID]), nil
}

// start serves the post service, built as production builds it, on a platform rpc server on a
// loopback port and returns a client made by rpc.Dial.
func start(t *testing.T, g *graph) postv1.PostServiceClient {
	t.Helper()
	// The helper migrates the database; the service makes its own store on it.
	_, ob, db := storetest.OpenSQLiteStore(t)
	svc, err := post.New(post.Config{}, post.Deps{DB: db, Outbox: ob, Follows: g}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	svc.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := rpc.Dial(rpc.ClientConfig{Target: ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return postv1.NewPostServiceClient(conn)
}

func wantCode(t *testing.T, err error, code errs.Code, pointers ...string) {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("err = %v (%T), want *errs.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code %s (%v), want %s", e.Code, err, code)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Pointer)
	}
	if !slices.Equal(got, pointers) {
		t.Fatalf("field pointers %v, want %v", got, pointers)
	}
}

func id(t *testing.T) string { return storetest.NewID(t) }

func TestErrorCodesAndFieldViolationsCrossTheWire(t *testing.T) {
	c := start(t, &graph{})
	ctx := t.Context()
	alice, bob := id(t), id(t)
	p, err := c.CreatePost(ctx, &postv1.CreatePostRequest{CallerId: alice, Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	postID := p.GetPost().GetId()
	tests := []struct {
		name     string
		call     func() error
		code     errs.Code
		pointers []string
	}{
		{"empty text", func() error {
			_, err := c.CreatePost(ctx, &postv1.CreatePostRequest{CallerId: alice, Text: "   "})
			return err
		}, errs.ValidationFailed, []string{"/text"}},
		{"text too long", func() error {
			_, err := c.CreatePost(ctx, &postv1.CreatePostRequest{CallerId: alice, Text: strings.Repeat("é", 501)})
			return err
		}, errs.ValidationFailed, []string{"/text"}},
		{"empty comment", func() error {
			_, err := c.AddComment(ctx, &postv1.AddCommentRequest{PostId: postID, CallerId: bob})
			return err
		}, errs.ValidationFailed, []string{"/text"}},
		{"missing caller", func() error {
			_, err := c.CreatePost(ctx, &postv1.CreatePostRequest{Text: "hi"})
			return err
		}, errs.ValidationFailed, []string{"/caller_id"}},
		{"missing id and caller", func() error {
			_, err := c.DeletePost(ctx, &postv1.DeletePostRequest{})
			return err
		}, errs.ValidationFailed, []string{"/id", "/caller_id"}},
		{"bad cursor and limit", func() error {
			_, err := c.ListUserPosts(ctx, &postv1.ListUserPostsRequest{AuthorId: alice, Cursor: "garbage!", Limit: 1000})
			return err
		}, errs.ValidationFailed, []string{"/limit", "/cursor"}},
		{"unknown post", func() error {
			_, err := c.GetPost(ctx, &postv1.GetPostRequest{Id: id(t)})
			return err
		}, errs.NotFound, nil},
		{"like unknown post", func() error {
			_, err := c.LikePost(ctx, &postv1.LikePostRequest{Id: id(t), CallerId: bob})
			return err
		}, errs.NotFound, nil},
		{"comments of unknown post", func() error {
			_, err := c.ListComments(ctx, &postv1.ListCommentsRequest{PostId: id(t)})
			return err
		}, errs.NotFound, nil},
		{"delete someone else's post", func() error {
			_, err := c.DeletePost(ctx, &postv1.DeletePostRequest{Id: postID, CallerId: bob})
			return err
		}, errs.Forbidden, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.pointers...) })
	}
}

func TestPostsLikesCommentsAndTimelinesOverGRPC(t *testing.T) {
	g := &graph{follows: map[string][]string{}}
	c := start(t, g)
	ctx := t.Context()
	alice, bob, me := id(t), id(t), id(t)
	g.follows[me] = []string{alice, bob}

	var want []string // newest first
	for _, tc := range []struct{ author, text string }{{alice, "a1"}, {bob, "b1"}, {alice, "a2"}, {me, "mine"}, {bob, "b2"}} {
		resp, err := c.CreatePost(ctx, &postv1.CreatePostRequest{CallerId: tc.author, Text: " " + tc.text + " "})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPost()
		if p.GetText() != tc.text || p.GetAuthorId() != tc.author || p.GetCreatedAt() == nil || p.GetLikeCount() != 0 {
			t.Fatalf("created %v", p)
		}
		if tc.author != me {
			want = append([]string{p.GetId()}, want...)
		}
	}
	first := want[len(want)-1] // a1
	if _, err := c.LikePost(ctx, &postv1.LikePostRequest{Id: first, CallerId: me}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LikePost(ctx, &postv1.LikePostRequest{Id: first, CallerId: me}); err != nil {
		t.Fatalf("repeated like: %v", err)
	}
	cm, err := c.AddComment(ctx, &postv1.AddCommentRequest{PostId: first, CallerId: bob, Text: "nice"})
	if err != nil || cm.GetComment().GetText() != "nice" || cm.GetComment().GetPostId() != first {
		t.Fatalf("comment %v, %v", cm, err)
	}
	got, err := c.GetPost(ctx, &postv1.GetPostRequest{Id: first, CallerId: me})
	if err != nil || got.GetPost().GetLikeCount() != 1 || got.GetPost().GetCommentCount() != 1 || !got.GetPost().GetLikedByMe() {
		t.Fatalf("post after like and comment: %v, %v", got, err)
	}
	comments, err := c.ListComments(ctx, &postv1.ListCommentsRequest{PostId: first})
	if err != nil || len(comments.GetItems()) != 1 || comments.GetItems()[0].GetAuthorId() != bob || comments.GetNextCursor() != "" {
		t.Fatalf("comments %v, %v", comments, err)
	}

	var timeline []string
	cursor := ""
	for {
		page, err := c.HomeTimeline(ctx, &postv1.HomeTimelineRequest{CallerId: me, Cursor: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.GetItems() {
			timeline = append(timeline, p.GetId())
			if p.GetLikedByMe() != (p.GetId() == first) {
				t.Errorf("post %s: liked_by_me %v", p.GetText(), p.GetLikedByMe())
			}
		}
		if cursor = page.GetNextCursor(); cursor == "" {
			break
		}
	}
	if !slices.Equal(timeline, want) {
		t.Fatalf("home timeline %v, want %v", timeline, want)
	}
	mine, err := c.ListUserPosts(ctx, &postv1.ListUserPostsRequest{AuthorId: alice})
	if err != nil || len(mine.GetItems()) != 2 || mine.GetItems()[0].GetText() != "a2" {
		t.Fatalf("alice's posts %v, %v", mine, err)
	}

	if _, err := c.UnlikePost(ctx, &postv1.UnlikePostRequest{Id: first, CallerId: me}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeletePost(ctx, &postv1.DeletePostRequest{Id: first, CallerId: alice}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AddComment(ctx, &postv1.AddCommentRequest{PostId: first, CallerId: bob, Text: "too late"})
	wantCode(t, err, errs.NotFound)
}
