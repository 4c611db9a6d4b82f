package adapters

import (
	"context"
	"errors"
	"io"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
)

// UserService adapts user-service's gRPC contract to what the notification app needs: the
// followers of an author, streamed in batches, and usernames for the actors it names.
type UserService struct {
	Client userv1.UserServiceClient
}

// Each streams the ids of userID's followers to batch, one server batch at a time. An author
// unknown to user-service has no followers (the account may be gone): that is no error, or the
// event would be retried and dead-lettered for nothing.
func (u UserService) Each(ctx context.Context, userID string, batch func(ids []string) error) error {
	// The stream lasts as long as the follower list is long: the default per-call deadline of
	// the client does not apply, ctx (the handler's) bounds it.
	stream, err := u.Client.StreamFollowerIDs(rpc.WithoutDefaultDeadline(ctx), &userv1.StreamFollowerIDsRequest{UserId: userID})
	if err != nil {
		return notFoundIsEmpty(err)
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return notFoundIsEmpty(err)
		}
		if err := batch(b.GetFollowerIds()); err != nil {
			return err
		}
	}
}

// Usernames maps the ids of existing users to their usernames; unknown ids are absent.
func (u UserService) Usernames(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	resp, err := u.Client.GetUsers(ctx, &userv1.GetUsersRequest{Ids: ids})
	if err != nil {
		return nil, err
	}
	for _, usr := range resp.GetUsers() {
		out[usr.GetId()] = usr.GetUsername()
	}
	return out, nil
}

func notFoundIsEmpty(err error) error {
	if errs.CodeOf(err) == errs.NotFound {
		return nil
	}
	return err
}
