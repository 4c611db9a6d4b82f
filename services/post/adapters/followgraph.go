package adapters

import (
	"context"

	"google.golang.org/grpc"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
)

// FollowedIDsClient is the part of user-service's gRPC client the follow graph uses;
// userv1.UserServiceClient satisfies it.
type FollowedIDsClient interface {
	GetFollowedIDs(ctx context.Context, in *userv1.GetFollowedIDsRequest, opts ...grpc.CallOption) (*userv1.GetFollowedIDsResponse, error)
}

// UserFollowGraph reads whom a user follows from user-service (GetFollowedIDs); it is the
// app.FollowGraph of a process. It caches nothing, so a follow shows in the next home
// timeline read. Errors come back as the client returns them: over platform/rpc, *errs.Error
// with the code user-service (or the transport) gave, e.g. unavailable.
type UserFollowGraph struct {
	client FollowedIDsClient
}

// NewUserFollowGraph returns the follow graph behind client.
func NewUserFollowGraph(client FollowedIDsClient) *UserFollowGraph {
	return &UserFollowGraph{client: client}
}

// FollowedIDs returns the ids of every account userID follows (at most 5000).
func (g *UserFollowGraph) FollowedIDs(ctx context.Context, userID string) ([]string, error) {
	resp, err := g.client.GetFollowedIDs(ctx, &userv1.GetFollowedIDsRequest{FollowerId: userID})
	if err != nil {
		return nil, err
	}
	return resp.GetFolloweeIds(), nil
}
