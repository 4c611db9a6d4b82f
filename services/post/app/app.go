// Package app is post-service's application layer: the use cases (posts, likes, comments and
// the timelines) as one plain struct of handlers, the ports it needs from the outside (the
// store, the follow graph) as small interfaces it owns, and the mapping of domain errors to
// platform error codes at its edge: every error a handler returns is an *errs.Error.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/post/domain"
)

// Producer is the producer name stamped on the events the service emits.
const Producer = "post-service"

// Handler is one use case: it handles a command or query Q and answers R.
type Handler[Q, R any] interface {
	Handle(ctx context.Context, q Q) (R, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[Q, R any] func(ctx context.Context, q Q) (R, error)

// Handle calls f.
func (f HandlerFunc[Q, R]) Handle(ctx context.Context, q Q) (R, error) { return f(ctx, q) }

// None is the answer of a use case that answers nothing but success.
type None struct{}

// Application lists the use cases of post-service. Every handler returns errors as
// *errs.Error: validation_failed with field pointers (/text, /caller_id, /author_id,
// /cursor, /limit), not_found for an unknown or deleted post, forbidden for deleting someone
// else's post; errors of the follow graph keep their code (unavailable, deadline_exceeded);
// internal for everything unexpected.
type Application struct {
	CreatePost Handler[CreatePost, domain.Post]
	GetPost    Handler[GetPost, domain.Post]
	DeletePost Handler[DeletePost, None]

	LikePost   Handler[LikePost, None]
	UnlikePost Handler[UnlikePost, None]

	AddComment   Handler[AddComment, domain.Comment]
	ListComments Handler[ListComments, CommentPage]

	ListUserPosts Handler[ListUserPosts, PostPage]
	HomeTimeline  Handler[HomeTimeline, PostPage]
}

// Store is the persistence the use cases need; adapters.Store implements it. Methods that
// take events record them in the same transaction as the change, and only if the change
// happened. Errors are domain sentinels where the domain names the failure
// (ErrPostNotFound, ErrNotAuthor).
type Store interface {
	CreatePost(ctx context.Context, p domain.Post, evs ...events.Envelope) error
	Post(ctx context.Context, id, viewerID string) (domain.Post, error)
	DeletePost(ctx context.Context, id, authorID string, evs ...events.Envelope) error

	Like(ctx context.Context, postID, userID string, at time.Time, evs ...events.Envelope) (bool, error)
	Unlike(ctx context.Context, postID, userID string) (bool, error)

	AddComment(ctx context.Context, c domain.Comment, evs ...events.Envelope) error
	ListComments(ctx context.Context, postID string, after domain.Cursor, limit int) (domain.CommentPage, error)

	ListUserPosts(ctx context.Context, authorID, viewerID string, after domain.Cursor, limit int) (domain.PostPage, error)
	HomeTimeline(ctx context.Context, authorIDs []string, viewerID string, after domain.Cursor, limit int) (domain.PostPage, error)
}

// FollowGraph tells whom a user follows; the home timeline is made of their posts. The
// process adapts user-service's GetFollowedIDs to it (adapters.UserFollowGraph). An account
// follows at most 5000 others; an unknown account follows nobody.
type FollowGraph interface {
	FollowedIDs(ctx context.Context, userID string) ([]string, error)
}

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
}

// Deps are the adapters the application runs on; all are required.
type Deps struct {
	Store   Store
	Follows FollowGraph
}

// New builds the application.
func New(cfg Config, d Deps, log *slog.Logger) (*Application, error) {
	if d.Store == nil || d.Follows == nil {
		return nil, errors.New("post app: Store and Follows are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{
		store:   d.Store,
		follows: d.Follows,
		now:     func() time.Time { return cfg.Now().UTC().Truncate(time.Microsecond) },
		log:     log,
	}
	return &Application{
		CreatePost: edge(s.createPost),
		GetPost:    edge(s.getPost),
		DeletePost: edge(s.deletePost),

		LikePost:   edge(s.likePost),
		UnlikePost: edge(s.unlikePost),

		AddComment:   edge(s.addComment),
		ListComments: edge(s.listComments),

		ListUserPosts: edge(s.listUserPosts),
		HomeTimeline:  edge(s.homeTimeline),
	}, nil
}

// service holds what the use cases share; each use case is one of its methods.
type service struct {
	store   Store
	follows FollowGraph
	// now is the clock at the stores' precision (UTC microseconds), so that a time handed to
	// the store compares equal to what it reads back, and cursors made from either agree.
	now func() time.Time
	log *slog.Logger
}

// edge wraps a use case so that its errors leave the application as *errs.Error.
func edge[Q, R any](fn func(context.Context, Q) (R, error)) Handler[Q, R] {
	return HandlerFunc[Q, R](func(ctx context.Context, q Q) (R, error) {
		r, err := fn(ctx, q)
		if err != nil {
			var zero R
			return zero, toError(err)
		}
		return r, nil
	})
}
