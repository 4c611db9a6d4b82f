package adapters_test

import (
	"context"
	"net"
	"slices"
	"testing"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/post/adapters"
)

// users is a stand-in user-service answering GetFollowedIDs from a map.
type users struct {
	userv1.UnimplementedUserServiceServer
	follows map[string][]string
	err     error
}

func (u *users) GetFollowedIDs(_ context.Context, req *userv1.GetFollowedIDsRequest) (*userv1.GetFollowedIDsResponse, error) {
	if u.err != nil {
		return nil, u.err
	}
	return &userv1.GetFollowedIDsResponse{FolloweeIds: u.follows[req.GetFollowerId()]}, nil
}

// serveUsers serves u on a platform rpc server on a loopback port and returns a client
// connected to it with rpc.Dial, as a process connects to user-service.
func serveUsers(t *testing.T, u *users) userv1.UserServiceClient {
	t.Helper()
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	userv1.RegisterUserServiceServer(srv, u)
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
	return userv1.NewUserServiceClient(conn)
}

func TestUserFollowGraphReadsFolloweesOverGRPCAndKeepsErrorCodes(t *testing.T) {
	u := &users{follows: map[string][]string{"me": {"a", "b"}}}
	g := adapters.NewUserFollowGraph(serveUsers(t, u))

	got, err := g.FollowedIDs(t.Context(), "me")
	if err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("FollowedIDs(me) = %v, %v", got, err)
	}
	if got, err := g.FollowedIDs(t.Context(), "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("FollowedIDs(nobody) = %v, %v", got, err)
	}
	u.err = errs.New(errs.Unavailable, "draining")
	if _, err := g.FollowedIDs(t.Context(), "me"); errs.CodeOf(err) != errs.Unavailable {
		t.Fatalf("err = %v, want user-service's unavailable", err)
	}
}
