package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/post/domain"
)

// CreatePost publishes a post by the caller.
type CreatePost struct {
	CallerID string
	Text     string // 1..500 characters after trimming; stored trimmed
}

// GetPost reads one post; CallerID (may be empty) is whom LikedByMe is about.
type GetPost struct {
	ID       string
	CallerID string
}

// DeletePost deletes the caller's own post, with its likes and comments.
type DeletePost struct {
	ID       string
	CallerID string
}

// LikePost makes the caller like a post; liking it again changes nothing.
type LikePost struct {
	ID       string
	CallerID string
}

// UnlikePost takes the caller's like back; unliking a post not liked changes nothing.
type UnlikePost struct {
	ID       string
	CallerID string
}

// AddComment comments on a post as the caller.
type AddComment struct {
	PostID   string
	CallerID string
	Text     string // 1..500 characters after trimming; stored trimmed
}

// ListComments asks for a page of a post's comments, oldest first. Cursor is the NextCursor
// of the previous page ("" for the first); Limit 0 means domain.DefaultPageSize.
type ListComments struct {
	PostID string
	Cursor string
	Limit  int
}

// ListUserPosts asks for a page of one author's posts, newest first, as CallerID (may be
// empty) sees them.
type ListUserPosts struct {
	AuthorID string
	CallerID string
	Cursor   string
	Limit    int
}

// HomeTimeline asks for a page of the posts of the accounts the caller follows, newest first.
type HomeTimeline struct {
	CallerID string
	Cursor   string
	Limit    int
}

// PostPage is one page of posts; NextCursor is "" on the last page.
type PostPage struct {
	Posts      []domain.Post
	NextCursor string
}

// CommentPage is one page of comments; NextCursor is "" on the last page.
type CommentPage struct {
	Comments   []domain.Comment
	NextCursor string
}

// checkID adds a violation to bad unless id is a well-formed id (required) or, when optional,
// empty.
func checkID(bad *domain.Fields, name, id string, optional bool) {
	if (id != "" || !optional) && !domain.ValidID(id) {
		bad.Add(name, domain.ErrIDInvalid)
	}
}

// parseText checks the text of a post or comment into bad and returns it trimmed.
func parseText(bad *domain.Fields, s string) string {
	t, err := domain.ParseText(s)
	if de, ok := errors.AsType[*domain.Error](err); ok {
		bad.Add("text", de)
	}
	return t
}

// parsePage checks a page request into bad and returns the cursor and page size.
func parsePage(bad *domain.Fields, cursor string, limit int) (domain.Cursor, int) {
	size, err := domain.PageSize(limit)
	if err != nil {
		bad.Add("limit", domain.ErrPageSizeInvalid)
	}
	after, err := domain.ParseCursor(cursor)
	if err != nil {
		bad.Add("cursor", domain.ErrCursorInvalid)
	}
	return after, size
}

func newEvent(typ, authorID string, payload any) (events.Envelope, error) {
	ev, err := events.New(typ, authorID, Producer, payload)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("post app: build %s event: %w", typ, err)
	}
	return ev, nil
}

// createPost stores the post and its post.created event in one transaction.
func (s *service) createPost(ctx context.Context, c CreatePost) (domain.Post, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", c.CallerID, false)
	text := parseText(&bad, c.Text)
	if err := bad.Err(); err != nil {
		return domain.Post{}, err
	}
	id, err := domain.NewID()
	if err != nil {
		return domain.Post{}, err
	}
	p := domain.Post{ID: id, AuthorID: c.CallerID, Text: text, CreatedAt: s.now()}
	ev, err := newEvent(eventsv1.PostCreated, p.AuthorID, eventsv1.PostCreatedPayload{
		PostID: p.ID, AuthorID: p.AuthorID, Text: p.Text, At: p.CreatedAt,
	})
	if err != nil {
		return domain.Post{}, err
	}
	if err := s.store.CreatePost(ctx, p, ev); err != nil {
		return domain.Post{}, err
	}
	return p, nil
}

func (s *service) getPost(ctx context.Context, q GetPost) (domain.Post, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", q.CallerID, true)
	if err := bad.Err(); err != nil {
		return domain.Post{}, err
	}
	return s.store.Post(ctx, q.ID, q.CallerID)
}

// deletePost deletes the post if the caller wrote it (forbidden otherwise; not_found for an
// unknown or already deleted post) and records post.deleted in the same transaction.
func (s *service) deletePost(ctx context.Context, c DeletePost) (None, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", c.CallerID, false)
	if err := bad.Err(); err != nil {
		return None{}, err
	}
	// Only the author can delete, so the caller is the author the event is keyed by; the
	// store records it only if the deletion happens.
	ev, err := newEvent(eventsv1.PostDeleted, c.CallerID, eventsv1.PostDeletedPayload{PostID: c.ID, AuthorID: c.CallerID})
	if err != nil {
		return None{}, err
	}
	return None{}, s.store.DeletePost(ctx, c.ID, c.CallerID, ev)
}

// likePost is idempotent: post.liked is emitted only when the like is new, so a repeated like
// notifies nobody twice.
func (s *service) likePost(ctx context.Context, c LikePost) (None, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", c.CallerID, false)
	if err := bad.Err(); err != nil {
		return None{}, err
	}
	// The event names the post's author (who is told) and is keyed by them. A post's author
	// never changes, so reading it first is safe; a deletion in between makes the like fail
	// as not_found.
	p, err := s.store.Post(ctx, c.ID, "")
	if err != nil {
		return None{}, err
	}
	ev, err := newEvent(eventsv1.PostLiked, p.AuthorID, eventsv1.PostLikedPayload{PostID: p.ID, AuthorID: p.AuthorID, LikerID: c.CallerID})
	if err != nil {
		return None{}, err
	}
	_, err = s.store.Like(ctx, p.ID, c.CallerID, s.now(), ev)
	return None{}, err
}

// unlikePost is idempotent and emits nothing.
func (s *service) unlikePost(ctx context.Context, c UnlikePost) (None, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", c.CallerID, false)
	if err := bad.Err(); err != nil {
		return None{}, err
	}
	_, err := s.store.Unlike(ctx, c.ID, c.CallerID)
	return None{}, err
}

// addComment stores the comment, bumps the post's comment count and records post.commented
// (keyed by the post's author), in one transaction.
func (s *service) addComment(ctx context.Context, c AddComment) (domain.Comment, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", c.CallerID, false)
	text := parseText(&bad, c.Text)
	if err := bad.Err(); err != nil {
		return domain.Comment{}, err
	}
	p, err := s.store.Post(ctx, c.PostID, "")
	if err != nil {
		return domain.Comment{}, err
	}
	id, err := domain.NewID()
	if err != nil {
		return domain.Comment{}, err
	}
	cm := domain.Comment{ID: id, PostID: p.ID, AuthorID: c.CallerID, Text: text, CreatedAt: s.now()}
	ev, err := newEvent(eventsv1.PostCommented, p.AuthorID, eventsv1.PostCommentedPayload{
		PostID: p.ID, AuthorID: p.AuthorID, CommentID: cm.ID, CommenterID: cm.AuthorID, Text: cm.Text,
	})
	if err != nil {
		return domain.Comment{}, err
	}
	if err := s.store.AddComment(ctx, cm, ev); err != nil {
		return domain.Comment{}, err
	}
	return cm, nil
}

func (s *service) listComments(ctx context.Context, q ListComments) (CommentPage, error) {
	var bad domain.Fields
	after, size := parsePage(&bad, q.Cursor, q.Limit)
	if err := bad.Err(); err != nil {
		return CommentPage{}, err
	}
	p, err := s.store.ListComments(ctx, q.PostID, after, size)
	if err != nil {
		return CommentPage{}, err
	}
	return CommentPage{Comments: p.Comments, NextCursor: p.Next.Encode()}, nil
}

func (s *service) listUserPosts(ctx context.Context, q ListUserPosts) (PostPage, error) {
	var bad domain.Fields
	checkID(&bad, "author_id", q.AuthorID, false)
	checkID(&bad, "caller_id", q.CallerID, true)
	after, size := parsePage(&bad, q.Cursor, q.Limit)
	if err := bad.Err(); err != nil {
		return PostPage{}, err
	}
	p, err := s.store.ListUserPosts(ctx, q.AuthorID, q.CallerID, after, size)
	if err != nil {
		return PostPage{}, err
	}
	return PostPage{Posts: p.Posts, NextCursor: p.Next.Encode()}, nil
}

// homeTimeline reads the caller's followees from the follow graph, then one page of their
// posts (fan-out on read; see adapters.Store.HomeTimeline for why). The caller's own posts are
// not included: the timeline is what the people they follow wrote.
func (s *service) homeTimeline(ctx context.Context, q HomeTimeline) (PostPage, error) {
	var bad domain.Fields
	checkID(&bad, "caller_id", q.CallerID, false)
	after, size := parsePage(&bad, q.Cursor, q.Limit)
	if err := bad.Err(); err != nil {
		return PostPage{}, err
	}
	followed, err := s.follows.FollowedIDs(ctx, q.CallerID)
	if err != nil {
		return PostPage{}, fmt.Errorf("post app: read the followed accounts: %w", err)
	}
	p, err := s.store.HomeTimeline(ctx, followed, q.CallerID, after, size)
	if err != nil {
		return PostPage{}, err
	}
	return PostPage{Posts: p.Posts, NextCursor: p.Next.Encode()}, nil
}
