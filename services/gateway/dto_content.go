package gateway

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

// The bodies of the post, comment and timeline routes.

// textMax is post-service's limit on a post's or comment's text, in characters after trimming
// white space at both ends (as post-service trims it).
const textMax = 500

// postIDRE: post-service's ids are opaque but URL-safe; anything else names no post.
var postIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// textRequest is the body of POST /v1/posts and POST /v1/posts/{id}/comments.
type textRequest struct {
	Text string `json:"text"`
}

func (r *textRequest) validate() error {
	var c fieldCheck
	switch n := utf8.RuneCountInString(strings.TrimSpace(r.Text)); {
	case n == 0:
		c.add("/text", "is required and must not be blank")
	case n > textMax:
		c.add("/text", "must be at most 500 characters long (leading and trailing white space aside)")
	}
	return c.err()
}

// authorResponse is who wrote a post or a comment. Username and display name are empty when
// the account no longer exists.
type authorResponse struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

type postResponse struct {
	ID           string         `json:"id"`
	Author       authorResponse `json:"author"`
	Text         string         `json:"text"`
	CreatedAt    time.Time      `json:"created_at"`
	LikeCount    int64          `json:"like_count"`
	CommentCount int64          `json:"comment_count"`
	LikedByMe    bool           `json:"liked_by_me"`
}

type commentResponse struct {
	ID        string         `json:"id"`
	PostID    string         `json:"post_id"`
	Author    authorResponse `json:"author"`
	Text      string         `json:"text"`
	CreatedAt time.Time      `json:"created_at"`
}

// listResponse is one page of a list. NextCursor is null on the last page.
type listResponse[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	l := listResponse[T]{Items: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// authors maps user ids to authors.
type authors map[string]authorResponse

func newAuthors(users []*userv1.User) authors {
	a := make(authors, len(users))
	for _, u := range users {
		a[u.GetId()] = authorResponse{ID: u.GetId(), Username: u.GetUsername(), DisplayName: u.GetDisplayName()}
	}
	return a
}

func (a authors) of(id string) authorResponse {
	if au, ok := a[id]; ok {
		return au
	}
	return authorResponse{ID: id}
}

// Times are truncated to the second, as users' are: RFC 3339 without a fraction is what every
// client parses.
func toPost(p *postv1.Post, a authors) postResponse {
	return postResponse{
		ID:           p.GetId(),
		Author:       a.of(p.GetAuthorId()),
		Text:         p.GetText(),
		CreatedAt:    p.GetCreatedAt().AsTime().UTC().Truncate(time.Second),
		LikeCount:    p.GetLikeCount(),
		CommentCount: p.GetCommentCount(),
		LikedByMe:    p.GetLikedByMe(),
	}
}

func toComment(c *postv1.Comment, a authors) commentResponse {
	return commentResponse{
		ID:        c.GetId(),
		PostID:    c.GetPostId(),
		Author:    a.of(c.GetAuthorId()),
		Text:      c.GetText(),
		CreatedAt: c.GetCreatedAt().AsTime().UTC().Truncate(time.Second),
	}
}

// pathPostID is the {id} of a route; a value no post can have is not found, without asking
// post-service.
func pathPostID(v string) (string, error) {
	if !postIDRE.MatchString(v) {
		return "", errs.New(errs.NotFound, "No such post.")
	}
	return v, nil
}
