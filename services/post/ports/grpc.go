// Package ports is post-service's gRPC port: it implements postv1.PostServiceServer by
// checking the shape of each request (required fields present), converting between protobuf
// messages and the application's types, and calling the application. Errors come back from the
// application as *errs.Error; the platform's gRPC server sends their code in the status
// details, field pointers included (e.g. validation_failed at /text).
package ports

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/post/app"
	"github.com/piazza-social/piazza/services/post/domain"
)

// GRPCServer serves the PostService contract on top of the application.
type GRPCServer struct {
	postv1.UnimplementedPostServiceServer
	app *app.Application
}

var _ postv1.PostServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

func toProtoPost(p domain.Post) *postv1.Post {
	return &postv1.Post{
		Id:           p.ID,
		AuthorId:     p.AuthorID,
		Text:         p.Text,
		CreatedAt:    timestamppb.New(p.CreatedAt),
		LikeCount:    p.LikeCount,
		CommentCount: p.CommentCount,
		LikedByMe:    p.LikedByMe,
	}
}

func toProtoComment(c domain.Comment) *postv1.Comment {
	return &postv1.Comment{
		Id:        c.ID,
		PostId:    c.PostID,
		AuthorId:  c.AuthorID,
		Text:      c.Text,
		CreatedAt: timestamppb.New(c.CreatedAt),
	}
}

func toPostsResponse(p app.PostPage) *postv1.ListPostsResponse {
	items := make([]*postv1.Post, len(p.Posts))
	for i, post := range p.Posts {
		items[i] = toProtoPost(post)
	}
	return &postv1.ListPostsResponse{Items: items, NextCursor: p.NextCursor}
}

// CreatePost publishes a post; the application validates the text (pointer /text).
func (s *GRPCServer) CreatePost(ctx context.Context, req *postv1.CreatePostRequest) (*postv1.CreatePostResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	p, err := s.app.CreatePost.Handle(ctx, app.CreatePost{CallerID: req.GetCallerId(), Text: req.GetText()})
	if err != nil {
		return nil, err
	}
	return &postv1.CreatePostResponse{Post: toProtoPost(p)}, nil
}

// GetPost returns one post; caller_id is optional.
func (s *GRPCServer) GetPost(ctx context.Context, req *postv1.GetPostRequest) (*postv1.GetPostResponse, error) {
	if err := errs.Required("id", req.GetId()); err != nil {
		return nil, err
	}
	p, err := s.app.GetPost.Handle(ctx, app.GetPost{ID: req.GetId(), CallerID: req.GetCallerId()})
	if err != nil {
		return nil, err
	}
	return &postv1.GetPostResponse{Post: toProtoPost(p)}, nil
}

// DeletePost deletes the caller's own post: forbidden for anyone else, not_found for an
// unknown post.
func (s *GRPCServer) DeletePost(ctx context.Context, req *postv1.DeletePostRequest) (*postv1.DeletePostResponse, error) {
	if err := errs.Required("id", req.GetId(), "caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	if _, err := s.app.DeletePost.Handle(ctx, app.DeletePost{ID: req.GetId(), CallerID: req.GetCallerId()}); err != nil {
		return nil, err
	}
	return &postv1.DeletePostResponse{}, nil
}

// LikePost is idempotent.
func (s *GRPCServer) LikePost(ctx context.Context, req *postv1.LikePostRequest) (*postv1.LikePostResponse, error) {
	if err := errs.Required("id", req.GetId(), "caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	if _, err := s.app.LikePost.Handle(ctx, app.LikePost{ID: req.GetId(), CallerID: req.GetCallerId()}); err != nil {
		return nil, err
	}
	return &postv1.LikePostResponse{}, nil
}

// UnlikePost is idempotent.
func (s *GRPCServer) UnlikePost(ctx context.Context, req *postv1.UnlikePostRequest) (*postv1.UnlikePostResponse, error) {
	if err := errs.Required("id", req.GetId(), "caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	if _, err := s.app.UnlikePost.Handle(ctx, app.UnlikePost{ID: req.GetId(), CallerID: req.GetCallerId()}); err != nil {
		return nil, err
	}
	return &postv1.UnlikePostResponse{}, nil
}

// AddComment comments on a post; the application validates the text (pointer /text).
func (s *GRPCServer) AddComment(ctx context.Context, req *postv1.AddCommentRequest) (*postv1.AddCommentResponse, error) {
	if err := errs.Required("post_id", req.GetPostId(), "caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	c, err := s.app.AddComment.Handle(ctx, app.AddComment{PostID: req.GetPostId(), CallerID: req.GetCallerId(), Text: req.GetText()})
	if err != nil {
		return nil, err
	}
	return &postv1.AddCommentResponse{Comment: toProtoComment(c)}, nil
}

// ListComments lists a post's comments, oldest first.
func (s *GRPCServer) ListComments(ctx context.Context, req *postv1.ListCommentsRequest) (*postv1.ListCommentsResponse, error) {
	if err := errs.Required("post_id", req.GetPostId()); err != nil {
		return nil, err
	}
	p, err := s.app.ListComments.Handle(ctx, app.ListComments{PostID: req.GetPostId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	items := make([]*postv1.Comment, len(p.Comments))
	for i, c := range p.Comments {
		items[i] = toProtoComment(c)
	}
	return &postv1.ListCommentsResponse{Items: items, NextCursor: p.NextCursor}, nil
}

// ListUserPosts lists one author's posts, newest first.
func (s *GRPCServer) ListUserPosts(ctx context.Context, req *postv1.ListUserPostsRequest) (*postv1.ListPostsResponse, error) {
	if err := errs.Required("author_id", req.GetAuthorId()); err != nil {
		return nil, err
	}
	p, err := s.app.ListUserPosts.Handle(ctx, app.ListUserPosts{
		AuthorID: req.GetAuthorId(), CallerID: req.GetCallerId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	return toPostsResponse(p), nil
}

// HomeTimeline lists the posts of the accounts the caller follows, newest first.
func (s *GRPCServer) HomeTimeline(ctx context.Context, req *postv1.HomeTimelineRequest) (*postv1.ListPostsResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	p, err := s.app.HomeTimeline.Handle(ctx, app.HomeTimeline{CallerID: req.GetCallerId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	return toPostsResponse(p), nil
}
