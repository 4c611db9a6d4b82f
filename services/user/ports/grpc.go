// Package ports is user-service's gRPC port: it implements userv1.UserServiceServer by
// checking the shape of each request (required fields present, sizes in range), converting
// between protobuf messages and the application's types, and calling the application. Errors
// come back from the application as *errs.Error; the platform's gRPC server sends their code
// in the status details.
package ports

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/user/app"
	"github.com/piazza-social/piazza/services/user/domain"
)

// GRPCServer serves the UserService contract on top of the application.
type GRPCServer struct {
	userv1.UnimplementedUserServiceServer
	app *app.Application
}

var _ userv1.UserServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

func toProtoUser(u domain.User) *userv1.User {
	return &userv1.User{
		Id:             u.ID,
		Username:       u.Username,
		DisplayName:    u.DisplayName,
		Bio:            u.Bio,
		FollowersCount: u.FollowersCount,
		FollowingCount: u.FollowingCount,
		CreatedAt:      timestamppb.New(u.CreatedAt),
		Email:          u.Email,
	}
}

func toProtoUsers(us []domain.User) []*userv1.User {
	out := make([]*userv1.User, len(us))
	for i, u := range us {
		out[i] = toProtoUser(u)
	}
	return out
}

func toAuthResponse(a app.Auth) *userv1.AuthResponse {
	return &userv1.AuthResponse{
		User:                  toProtoUser(a.User),
		AccessToken:           a.AccessToken,
		RefreshToken:          a.RefreshToken,
		AccessTokenExpiresAt:  timestamppb.New(a.AccessTokenExpiresAt),
		RefreshTokenExpiresAt: timestamppb.New(a.RefreshTokenExpiresAt),
	}
}

// SignUp creates an account; the application validates every field (with pointers /username,
// /email, /password).
func (s *GRPCServer) SignUp(ctx context.Context, req *userv1.SignUpRequest) (*userv1.AuthResponse, error) {
	a, err := s.app.SignUp.Handle(ctx, app.SignUp{Username: req.GetUsername(), Email: req.GetEmail(), Password: req.GetPassword()})
	if err != nil {
		return nil, err
	}
	return toAuthResponse(a), nil
}

// Login starts a session.
func (s *GRPCServer) Login(ctx context.Context, req *userv1.LoginRequest) (*userv1.AuthResponse, error) {
	if err := errs.Required("login", req.GetLogin(), "password", req.GetPassword()); err != nil {
		return nil, err
	}
	a, err := s.app.Login.Handle(ctx, app.Login{Login: req.GetLogin(), Password: req.GetPassword()})
	if err != nil {
		return nil, err
	}
	return toAuthResponse(a), nil
}

// Refresh rotates a refresh token.
func (s *GRPCServer) Refresh(ctx context.Context, req *userv1.RefreshRequest) (*userv1.AuthResponse, error) {
	if err := errs.Required("refresh_token", req.GetRefreshToken()); err != nil {
		return nil, err
	}
	a, err := s.app.Refresh.Handle(ctx, app.Refresh{RefreshToken: req.GetRefreshToken()})
	if err != nil {
		return nil, err
	}
	return toAuthResponse(a), nil
}

// Logout revokes a session; an unknown token is not an error.
func (s *GRPCServer) Logout(ctx context.Context, req *userv1.LogoutRequest) (*userv1.LogoutResponse, error) {
	if err := errs.Required("refresh_token", req.GetRefreshToken()); err != nil {
		return nil, err
	}
	if _, err := s.app.Logout.Handle(ctx, app.Logout{RefreshToken: req.GetRefreshToken()}); err != nil {
		return nil, err
	}
	return &userv1.LogoutResponse{}, nil
}

// CheckSession answers token_invalid for a revoked, expired, unknown or someone else's session.
func (s *GRPCServer) CheckSession(ctx context.Context, req *userv1.CheckSessionRequest) (*userv1.CheckSessionResponse, error) {
	if err := s.checkSession(ctx, req); err != nil {
		return nil, err
	}
	return &userv1.CheckSessionResponse{}, nil
}

// checkSession is CheckSession, for it and for the lookups that carry a check_session; a nil
// req checks nothing.
func (s *GRPCServer) checkSession(ctx context.Context, req *userv1.CheckSessionRequest) error {
	if req == nil {
		return nil
	}
	if err := errs.Required("session_id", req.GetSessionId(), "user_id", req.GetUserId()); err != nil {
		return err
	}
	_, err := s.app.CheckSession.Handle(ctx, app.CheckSession{SessionID: req.GetSessionId(), UserID: req.GetUserId()})
	return err
}

// GetSigningKeys returns the JWK Set that verifies access tokens.
func (s *GRPCServer) GetSigningKeys(ctx context.Context, _ *userv1.GetSigningKeysRequest) (*userv1.GetSigningKeysResponse, error) {
	jwks, err := s.app.SigningKeys.Handle(ctx, app.None{})
	if err != nil {
		return nil, err
	}
	return &userv1.GetSigningKeysResponse{Jwks: jwks}, nil
}

// GetUser finds a user by id or username, after checking check_session if there is one.
func (s *GRPCServer) GetUser(ctx context.Context, req *userv1.GetUserRequest) (*userv1.GetUserResponse, error) {
	if err := s.checkSession(ctx, req.GetCheckSession()); err != nil {
		return nil, err
	}
	q := app.GetUser{CallerID: req.GetCallerId()}
	switch key := req.GetKey().(type) {
	case *userv1.GetUserRequest_Id:
		q.ID = key.Id
		if err := errs.Required("id", q.ID); err != nil {
			return nil, err
		}
	case *userv1.GetUserRequest_Username:
		q.Username = key.Username
		if err := errs.Required("username", q.Username); err != nil {
			return nil, err
		}
	default:
		return nil, errs.Validation("The request is invalid: give an id or a username.", errs.Field("/id", "id or username is required"))
	}
	u, err := s.app.GetUser.Handle(ctx, q)
	if err != nil {
		return nil, err
	}
	return &userv1.GetUserResponse{User: toProtoUser(u)}, nil
}

// GetUsers returns the users among the ids that exist, after checking check_session if there
// is one.
func (s *GRPCServer) GetUsers(ctx context.Context, req *userv1.GetUsersRequest) (*userv1.GetUsersResponse, error) {
	if err := s.checkSession(ctx, req.GetCheckSession()); err != nil {
		return nil, err
	}
	users, err := s.app.GetUsers.Handle(ctx, app.GetUsers{IDs: req.GetIds()})
	if err != nil {
		return nil, err
	}
	return &userv1.GetUsersResponse{Users: toProtoUsers(users)}, nil
}

// UpdateProfile changes the caller's display name and/or bio.
func (s *GRPCServer) UpdateProfile(ctx context.Context, req *userv1.UpdateProfileRequest) (*userv1.UpdateProfileResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	u, err := s.app.UpdateProfile.Handle(ctx, app.UpdateProfile{CallerID: req.GetCallerId(), DisplayName: req.DisplayName, Bio: req.Bio})
	if err != nil {
		return nil, err
	}
	return &userv1.UpdateProfileResponse{User: toProtoUser(u)}, nil
}

// Follow makes the caller follow a user.
func (s *GRPCServer) Follow(ctx context.Context, req *userv1.FollowRequest) (*userv1.FollowResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId(), "username", req.GetUsername()); err != nil {
		return nil, err
	}
	if _, err := s.app.Follow.Handle(ctx, app.Follow{CallerID: req.GetCallerId(), Username: req.GetUsername()}); err != nil {
		return nil, err
	}
	return &userv1.FollowResponse{}, nil
}

// Unfollow ends the caller's follow of a user.
func (s *GRPCServer) Unfollow(ctx context.Context, req *userv1.UnfollowRequest) (*userv1.UnfollowResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId(), "username", req.GetUsername()); err != nil {
		return nil, err
	}
	if _, err := s.app.Unfollow.Handle(ctx, app.Unfollow{CallerID: req.GetCallerId(), Username: req.GetUsername()}); err != nil {
		return nil, err
	}
	return &userv1.UnfollowResponse{}, nil
}

// ListFollowers lists a user's followers, newest first.
func (s *GRPCServer) ListFollowers(ctx context.Context, req *userv1.ListFollowsRequest) (*userv1.ListFollowsResponse, error) {
	return s.list(ctx, req, s.app.ListFollowers)
}

// ListFollowing lists whom a user follows, newest first.
func (s *GRPCServer) ListFollowing(ctx context.Context, req *userv1.ListFollowsRequest) (*userv1.ListFollowsResponse, error) {
	return s.list(ctx, req, s.app.ListFollowing)
}

func (s *GRPCServer) list(ctx context.Context, req *userv1.ListFollowsRequest, h app.Handler[app.ListFollows, app.Page]) (*userv1.ListFollowsResponse, error) {
	if err := errs.Required("username", req.GetUsername()); err != nil {
		return nil, err
	}
	p, err := h.Handle(ctx, app.ListFollows{Username: req.GetUsername(), Cursor: req.GetCursor(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	return &userv1.ListFollowsResponse{Items: toProtoUsers(p.Users), NextCursor: p.NextCursor}, nil
}

// StreamFollowerIDs sends every follower id of a user, one message per batch, reading each
// batch only after the previous one was handed to the stream.
func (s *GRPCServer) StreamFollowerIDs(req *userv1.StreamFollowerIDsRequest, stream grpc.ServerStreamingServer[userv1.FollowerIDsBatch]) error {
	if err := errs.Required("user_id", req.GetUserId()); err != nil {
		return err
	}
	_, err := s.app.StreamFollowerIDs.Handle(stream.Context(), app.StreamFollowerIDs{
		UserID:    req.GetUserId(),
		BatchSize: int(req.GetBatchSize()),
		Batch: func(ids []string) error {
			return stream.Send(&userv1.FollowerIDsBatch{FollowerIds: ids})
		},
	})
	return err
}

// GetFollowedIDs returns the ids of everyone a user follows.
func (s *GRPCServer) GetFollowedIDs(ctx context.Context, req *userv1.GetFollowedIDsRequest) (*userv1.GetFollowedIDsResponse, error) {
	if err := errs.Required("follower_id", req.GetFollowerId()); err != nil {
		return nil, err
	}
	ids, err := s.app.GetFollowedIDs.Handle(ctx, app.GetFollowedIDs{FollowerID: req.GetFollowerId()})
	if err != nil {
		return nil, err
	}
	return &userv1.GetFollowedIDsResponse{FolloweeIds: ids}, nil
}
