package gateway_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway"
)

type author struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type post struct {
	ID           string `json:"id"`
	Author       author `json:"author"`
	Text         string `json:"text"`
	CreatedAt    string `json:"created_at"`
	LikeCount    int64  `json:"like_count"`
	CommentCount int64  `json:"comment_count"`
	LikedByMe    bool   `json:"liked_by_me"`
}

type comment struct {
	ID     string `json:"id"`
	PostID string `json:"post_id"`
	Author author `json:"author"`
	Text   string `json:"text"`
}

type listOf[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// createPost publishes a post as the owner of token.
func (h *harness) createPost(token, text string) post {
	h.t.Helper()
	w := h.do(req{method: "POST", path: "/v1/posts", token: token, body: `{"text":"` + text + `"}`})
	if w.Code != http.StatusCreated {
		h.t.Fatalf("create post: %d %s", w.Code, w.Body)
	}
	return decodeJSON[post](h.t, w)
}

func TestCreatingAPostAnswers201WithItsAuthor(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("Alice")
	w := h.do(req{method: "POST", path: "/v1/posts", token: alice.AccessToken, body: `{"text":"  hello, world  "}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	p := decodeJSON[post](t, w)
	want := post{
		ID: p.ID, Author: author{ID: alice.User.ID, Username: "alice", DisplayName: "Alice"}, Text: "hello, world",
		CreatedAt: h.clock.Now().UTC().Format(time.RFC3339),
	}
	if p != want {
		t.Errorf("post %+v,\nwant %+v", p, want)
	}
	if loc := w.Header().Get("Location"); loc != "/v1/posts/"+p.ID {
		t.Errorf("Location %q", loc)
	}
}

func TestInvalidPostAndCommentBodiesAreRejectedAtTheEdge(t *testing.T) {
	cases := []struct {
		name, body string
		pointers   []string
	}{
		{"missing text", `{}`, []string{"/text"}},
		{"blank text", `{"text":" \t\n "}`, []string{"/text"}},
		{"too long", `{"text":"` + strings.Repeat("é", 501) + `"}`, []string{"/text"}},
		{"wrong type", `{"text":5}`, []string{"/text"}},
		{"unknown member", `{"text":"hi","tags":[]}`, []string{"/tags"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice := h.signup("alice")
			p := h.createPost(alice.AccessToken, "a post")
			for _, path := range []string{"/v1/posts", "/v1/posts/" + p.ID + "/comments"} {
				got := wantProblem(t, h.do(req{method: "POST", path: path, token: alice.AccessToken, body: tc.body}), http.StatusBadRequest, errs.ValidationFailed)
				if !slices.Equal(pointers(got), tc.pointers) {
					t.Errorf("%s: pointers %q, want %q", path, pointers(got), tc.pointers)
				}
			}
			if n := h.posts.callCount("CreatePost") + h.posts.callCount("AddComment"); n != 1 {
				t.Errorf("post-service called %d times for invalid bodies", n-1)
			}
		})
	}
}

func TestTextOf500CharactersWithSurroundingSpaceIsAccepted(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	text := strings.Repeat("ü", 500)
	p := h.createPost(alice.AccessToken, "   "+text+"   ")
	if p.Text != text {
		t.Errorf("text of %d characters", len([]rune(p.Text)))
	}
}

func TestWritingPostsNeedsAToken(t *testing.T) {
	h := newHarness(t)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/posts", body: `{"text":"hi"}`}), http.StatusUnauthorized, errs.TokenMissing)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/timeline"}), http.StatusUnauthorized, errs.TokenMissing)
}

func TestAPostIsPublicAndLikedByMeIsTheCallers(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("alice"), h.signup("bob")
	p := h.createPost(alice.AccessToken, "like me")
	for range 2 { // idempotent
		if w := h.do(req{method: "POST", path: "/v1/posts/" + p.ID + "/like", token: bob.AccessToken}); w.Code != http.StatusNoContent {
			t.Fatalf("like: %d %s", w.Code, w.Body)
		}
	}
	anon := decodeJSON[post](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID}))
	if anon.LikeCount != 1 || anon.LikedByMe || anon.Author.Username != "alice" {
		t.Errorf("anonymous view %+v", anon)
	}
	mine := decodeJSON[post](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID, token: bob.AccessToken}))
	if !mine.LikedByMe {
		t.Errorf("bob's view %+v: liked_by_me false", mine)
	}
	// A token that is sent must be good: no silent fall-back to anonymous.
	wantProblem(t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID, token: tokenTampered}), http.StatusUnauthorized, errs.TokenInvalid)

	for range 2 {
		if w := h.do(req{method: "DELETE", path: "/v1/posts/" + p.ID + "/like", token: bob.AccessToken}); w.Code != http.StatusNoContent {
			t.Fatalf("unlike: %d %s", w.Code, w.Body)
		}
	}
	if got := decodeJSON[post](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID, token: bob.AccessToken})); got.LikeCount != 0 || got.LikedByMe {
		t.Errorf("after unlike %+v", got)
	}
}

func TestOnlyTheAuthorDeletesAPost(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("alice"), h.signup("bob")
	p := h.createPost(alice.AccessToken, "mine")
	wantProblem(t, h.do(req{method: "DELETE", path: "/v1/posts/" + p.ID, token: bob.AccessToken}), http.StatusForbidden, errs.Forbidden)
	if w := h.do(req{method: "DELETE", path: "/v1/posts/" + p.ID, token: alice.AccessToken}); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID}), http.StatusNotFound, errs.NotFound)
}

func TestAPostIDNoPostCanHaveIsNotFoundWithoutAskingPostService(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	for _, path := range []string{"/v1/posts/a.b", "/v1/posts/" + strings.Repeat("x", 65), "/v1/posts/%C3%A9"} {
		wantProblem(t, h.do(req{method: "GET", path: path}), http.StatusNotFound, errs.NotFound)
		wantProblem(t, h.do(req{method: "POST", path: path + "/like", token: alice.AccessToken}), http.StatusNotFound, errs.NotFound)
	}
	if n := h.posts.callCount("GetPost") + h.posts.callCount("LikePost"); n != 0 {
		t.Errorf("post-service called %d times", n)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/posts/p404"}), http.StatusNotFound, errs.NotFound)
}

func TestCommentsAreListedOldestFirstWithTheirAuthors(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("alice"), h.signup("bob")
	p := h.createPost(alice.AccessToken, "comment on this")
	for _, c := range []struct{ token, text string }{{bob.AccessToken, "first"}, {alice.AccessToken, "second"}, {bob.AccessToken, "third"}} {
		w := h.do(req{method: "POST", path: "/v1/posts/" + p.ID + "/comments", token: c.token, body: `{"text":"` + c.text + `"}`})
		if w.Code != http.StatusCreated {
			t.Fatalf("comment: %d %s", w.Code, w.Body)
		}
	}
	before := h.users.callCount("GetUsers")
	page1 := decodeJSON[listOf[comment]](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID + "/comments?limit=2"}))
	if len(page1.Items) != 2 || page1.Items[0].Text != "first" || page1.Items[0].Author.Username != "bob" ||
		page1.Items[1].Author.Username != "alice" || page1.Items[0].PostID != p.ID || page1.NextCursor == nil {
		t.Fatalf("page 1 %+v", page1)
	}
	page2 := decodeJSON[listOf[comment]](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID + "/comments?cursor=" + *page1.NextCursor}))
	if len(page2.Items) != 1 || page2.Items[0].Text != "third" || page2.NextCursor != nil {
		t.Fatalf("page 2 %+v", page2)
	}
	if n := h.users.callCount("GetUsers") - before; n != 2 {
		t.Errorf("%d GetUsers calls for 2 pages, want one per page", n)
	}
	if got := decodeJSON[post](t, h.do(req{method: "GET", path: "/v1/posts/" + p.ID})); got.CommentCount != 3 {
		t.Errorf("comment_count %d", got.CommentCount)
	}
}

func TestATimelinePageResolvesAllItsAuthorsWithOneCall(t *testing.T) {
	h := newHarness(t)
	reader := h.signup("reader")
	for _, name := range []string{"ann", "ben", "cat"} {
		u := h.signup(name)
		for i := range 2 {
			h.createPost(u.AccessToken, name+" says "+string(rune('a'+i)))
		}
	}
	before := h.users.callCount("GetUsers")
	w := h.do(req{method: "GET", path: "/v1/timeline?limit=5", token: reader.AccessToken})
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	tl := decodeJSON[listOf[post]](t, w)
	if len(tl.Items) != 5 || tl.NextCursor == nil {
		t.Fatalf("timeline %+v", tl)
	}
	if tl.Items[0].Text != "cat says b" || tl.Items[0].Author.Username != "cat" || tl.Items[4].Author.Username != "ann" {
		t.Errorf("timeline %+v", tl.Items)
	}
	if n := h.users.callCount("GetUsers") - before; n != 1 {
		t.Errorf("%d GetUsers calls for a page of 3 authors, want 1", n)
	}
	if n := h.users.callCount("GetUser"); n != 0 {
		t.Errorf("%d GetUser calls: authors must not be looked up one by one", n)
	}
}

func TestAUsersPostsNeedNoAuthorLookup(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	h.createPost(alice.AccessToken, "one")
	h.createPost(alice.AccessToken, "two")
	before := h.users.callCount("GetUsers")
	got := decodeJSON[listOf[post]](t, h.do(req{method: "GET", path: "/v1/users/ALICE/posts"}))
	if len(got.Items) != 2 || got.Items[0].Text != "two" || got.Items[1].Author.ID != alice.User.ID || got.NextCursor != nil {
		t.Fatalf("posts %+v", got)
	}
	if n := h.users.callCount("GetUsers") - before; n != 0 {
		t.Errorf("%d GetUsers calls: the author is the user looked up already", n)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/users/nobody/posts"}), http.StatusNotFound, errs.NotFound)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/users/alice/posts?limit=0"}), http.StatusBadRequest, errs.ValidationFailed)
}

func TestAPostByAnAccountThatNoLongerExistsShowsTheAuthorsIDOnly(t *testing.T) {
	h := newHarness(t)
	reader := h.signup("reader")
	h.posts.mu.Lock()
	h.posts.posts = append(h.posts.posts, &postv1.Post{Id: "orphan", AuthorId: "u-gone", Text: "still here", CreatedAt: timestamppb.New(h.clock.Now())})
	h.posts.mu.Unlock()
	tl := decodeJSON[listOf[post]](t, h.do(req{method: "GET", path: "/v1/timeline", token: reader.AccessToken}))
	if len(tl.Items) != 1 || tl.Items[0].Author != (author{ID: "u-gone"}) {
		t.Fatalf("timeline %+v", tl.Items)
	}
}

func TestContentRoutesAnswer503WithoutPostService(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.Posts = nil })
	alice := h.signup("alice")
	wantProblem(t, h.do(req{method: "GET", path: "/v1/timeline", token: alice.AccessToken}), http.StatusServiceUnavailable, errs.Unavailable)
}
