package ports_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/user"
	"github.com/piazza-social/piazza/services/user/adapters"
	"github.com/piazza-social/piazza/services/user/adapters/storetest"
)

type issuer struct{ n atomic.Int64 }

func (i *issuer) Issue(userID, sessionID string) (string, time.Time, error) {
	return fmt.Sprintf("access/%s/%s/%d", userID, sessionID, i.n.Add(1)), time.Now().Add(15 * time.Minute), nil
}

type keys []byte

func (k keys) JWKS() []byte { return k }

const jwks = `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`

// start serves the user service, built as production builds it, on a platform rpc server on a
// loopback port and returns a client made by rpc.Dial.
func start(t *testing.T) userv1.UserServiceClient {
	t.Helper()
	// The helper migrates the database; the service makes its own store on it.
	_, ob, db := storetest.OpenSQLiteStore(t)
	svc, err := user.New(user.Config{PasswordHashing: adapters.Argon2idParams{MemoryKiB: 64, Iterations: 1}},
		user.Deps{DB: db, Outbox: ob, Tokens: &issuer{}, Keys: keys(jwks)}, nil)
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
	return userv1.NewUserServiceClient(conn)
}

const password = "correct horse battery"

func signUp(t *testing.T, c userv1.UserServiceClient, username string) *userv1.AuthResponse {
	t.Helper()
	a, err := c.SignUp(t.Context(), &userv1.SignUpRequest{Username: username, Email: username + "@example.com", Password: password})
	if err != nil {
		t.Fatalf("sign up %s: %v", username, err)
	}
	return a
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

func TestErrorCodesAndFieldViolationsCrossTheWire(t *testing.T) {
	c := start(t)
	alice := signUp(t, c, "alice")
	ctx := t.Context()
	tests := []struct {
		name     string
		call     func() error
		code     errs.Code
		pointers []string
	}{
		{"unknown username", func() error {
			_, err := c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: "nobody"}})
			return err
		}, errs.NotFound, nil},
		{"follow unknown username", func() error {
			_, err := c.Follow(ctx, &userv1.FollowRequest{CallerId: alice.GetUser().GetId(), Username: "nobody"})
			return err
		}, errs.NotFound, nil},
		{"invalid sign-up", func() error {
			_, err := c.SignUp(ctx, &userv1.SignUpRequest{Username: "a!", Email: "nope", Password: "short"})
			return err
		}, errs.ValidationFailed, []string{"/username", "/email", "/password"}},
		{"taken username in another case", func() error {
			_, err := c.SignUp(ctx, &userv1.SignUpRequest{Username: "ALICE", Email: "a2@example.com", Password: password})
			return err
		}, errs.Conflict, []string{"/username"}},
		{"wrong password", func() error {
			_, err := c.Login(ctx, &userv1.LoginRequest{Login: "alice", Password: "wrong password"})
			return err
		}, errs.Unauthenticated, nil},
		{"login without fields", func() error {
			_, err := c.Login(ctx, &userv1.LoginRequest{})
			return err
		}, errs.ValidationFailed, []string{"/login", "/password"}},
		{"garbage refresh token", func() error {
			_, err := c.Refresh(ctx, &userv1.RefreshRequest{RefreshToken: "garbage"})
			return err
		}, errs.TokenInvalid, nil},
		{"follow yourself", func() error {
			_, err := c.Follow(ctx, &userv1.FollowRequest{CallerId: alice.GetUser().GetId(), Username: "alice"})
			return err
		}, errs.ValidationFailed, []string{"/username"}},
		{"get user without a key", func() error {
			_, err := c.GetUser(ctx, &userv1.GetUserRequest{})
			return err
		}, errs.ValidationFailed, []string{"/id"}},
		{"bad cursor and limit", func() error {
			_, err := c.ListFollowers(ctx, &userv1.ListFollowsRequest{Username: "alice", Cursor: "%%", Limit: 500})
			return err
		}, errs.ValidationFailed, []string{"/limit", "/cursor"}},
		{"bio too long", func() error {
			bio := strings.Repeat("b", 161)
			_, err := c.UpdateProfile(ctx, &userv1.UpdateProfileRequest{CallerId: alice.GetUser().GetId(), Bio: &bio})
			return err
		}, errs.ValidationFailed, []string{"/bio"}},
		{"check another user's session", func() error {
			_, err := c.CheckSession(ctx, &userv1.CheckSessionRequest{SessionId: "0190a0c4-0000-7000-8000-000000000000", UserId: alice.GetUser().GetId()})
			return err
		}, errs.TokenInvalid, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.pointers...) })
	}
}

func TestSessionLifecycleOverGRPC(t *testing.T) {
	c := start(t)
	ctx := t.Context()
	a := signUp(t, c, "Alice")
	if a.GetUser().GetUsername() != "alice" || a.GetUser().GetEmail() != "alice@example.com" || a.GetAccessToken() == "" ||
		a.GetRefreshToken() == "" || !a.GetAccessTokenExpiresAt().IsValid() || !a.GetRefreshTokenExpiresAt().AsTime().After(time.Now().Add(29*24*time.Hour)) {
		t.Fatalf("sign-up response %v", a)
	}
	l, err := c.Login(ctx, &userv1.LoginRequest{Login: "alice@EXAMPLE.com", Password: password})
	if err != nil || l.GetUser().GetId() != a.GetUser().GetId() {
		t.Fatalf("login: %v, %v", l, err)
	}
	r, err := c.Refresh(ctx, &userv1.RefreshRequest{RefreshToken: l.GetRefreshToken()})
	if err != nil || r.GetRefreshToken() == l.GetRefreshToken() {
		t.Fatalf("refresh: %v, %v", r, err)
	}
	// Reuse of the spent token revokes the session: the rotated token dies with it.
	_, err = c.Refresh(ctx, &userv1.RefreshRequest{RefreshToken: l.GetRefreshToken()})
	wantCode(t, err, errs.TokenInvalid)
	_, err = c.Refresh(ctx, &userv1.RefreshRequest{RefreshToken: r.GetRefreshToken()})
	wantCode(t, err, errs.TokenInvalid)

	if _, err := c.Logout(ctx, &userv1.LogoutRequest{RefreshToken: a.GetRefreshToken()}); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := c.Logout(ctx, &userv1.LogoutRequest{RefreshToken: a.GetRefreshToken()}); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	_, err = c.Logout(ctx, &userv1.LogoutRequest{})
	wantCode(t, err, errs.ValidationFailed, "/refresh_token")

	keys, err := c.GetSigningKeys(ctx, &userv1.GetSigningKeysRequest{})
	if err != nil || string(keys.GetJwks()) != jwks {
		t.Fatalf("signing keys: %s, %v", keys.GetJwks(), err)
	}
}

// sessionOf is the session of a, from the test issuer's access token.
func sessionOf(t *testing.T, a *userv1.AuthResponse) *userv1.CheckSessionRequest {
	t.Helper()
	parts := strings.Split(a.GetAccessToken(), "/")
	if len(parts) != 4 {
		t.Fatalf("access token %q", a.GetAccessToken())
	}
	return &userv1.CheckSessionRequest{UserId: parts[1], SessionId: parts[2]}
}

func TestLookupsCarryingASessionCheckFailWhenTheSessionHasEndedWhateverTheyFind(t *testing.T) {
	c := start(t)
	ctx := t.Context()
	alice := signUp(t, c, "alice")
	open := sessionOf(t, alice)
	ended := sessionOf(t, signUp(t, c, "bob"))
	ended.UserId = alice.GetUser().GetId() // bob's session is not alice's
	lookups := map[string]func(*userv1.CheckSessionRequest) error{
		"user by username": func(chk *userv1.CheckSessionRequest) error {
			_, err := c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: "alice"}, CheckSession: chk})
			return err
		},
		"unknown username": func(chk *userv1.CheckSessionRequest) error {
			_, err := c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: "nobody"}, CheckSession: chk})
			if errs.CodeOf(err) == errs.NotFound {
				return nil // what this lookup finds with an open session
			}
			return err
		},
		"users by id": func(chk *userv1.CheckSessionRequest) error {
			r, err := c.GetUsers(ctx, &userv1.GetUsersRequest{Ids: []string{alice.GetUser().GetId()}, CheckSession: chk})
			if err == nil && len(r.GetUsers()) != 1 {
				t.Errorf("users %v", r.GetUsers())
			}
			return err
		},
	}
	for name, lookup := range lookups {
		t.Run(name, func(t *testing.T) {
			if err := lookup(open); err != nil {
				t.Fatalf("with an open session: %v", err)
			}
			if err := lookup(nil); err != nil {
				t.Fatalf("without a check: %v", err)
			}
			wantCode(t, lookup(ended), errs.TokenInvalid)
		})
	}

	// Logged out: the same session, ended.
	if _, err := c.Logout(ctx, &userv1.LogoutRequest{RefreshToken: alice.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	for name, lookup := range lookups {
		t.Run(name+" after logout", func(t *testing.T) { wantCode(t, lookup(open), errs.TokenInvalid) })
	}
}

func TestProfilesAndFollowListsOverGRPC(t *testing.T) {
	c := start(t)
	ctx := t.Context()
	star := signUp(t, c, "star")
	var fans []string
	for i := range 5 {
		f := signUp(t, c, fmt.Sprintf("fan%d", i))
		if _, err := c.Follow(ctx, &userv1.FollowRequest{CallerId: f.GetUser().GetId(), Username: "star"}); err != nil {
			t.Fatal(err)
		}
		fans = append(fans, f.GetUser().GetId())
	}

	name := "The Star"
	up, err := c.UpdateProfile(ctx, &userv1.UpdateProfileRequest{CallerId: star.GetUser().GetId(), DisplayName: &name})
	if err != nil || up.GetUser().GetDisplayName() != name {
		t.Fatalf("update profile: %v, %v", up, err)
	}
	own, err := c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: "star"}, CallerId: star.GetUser().GetId()})
	if err != nil || own.GetUser().GetFollowersCount() != 5 || own.GetUser().GetEmail() != "star@example.com" || own.GetUser().GetDisplayName() != name {
		t.Fatalf("own profile: %v, %v", own, err)
	}
	other, err := c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Id{Id: star.GetUser().GetId()}})
	if err != nil || other.GetUser().GetEmail() != "" {
		t.Fatalf("someone else's view: %v, %v", other, err)
	}

	var listed []string
	cursor := ""
	for range 5 {
		p, err := c.ListFollowers(ctx, &userv1.ListFollowsRequest{Username: "star", Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range p.GetItems() {
			listed = append(listed, u.GetId())
		}
		if cursor = p.GetNextCursor(); cursor == "" {
			break
		}
	}
	if len(listed) != 5 {
		t.Fatalf("listed %d followers, want 5", len(listed))
	}

	stream, err := c.StreamFollowerIDs(ctx, &userv1.StreamFollowerIDsRequest{UserId: star.GetUser().GetId(), BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var (
		streamed []string
		batches  []int
	)
	for {
		b, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, len(b.GetFollowerIds()))
		streamed = append(streamed, b.GetFollowerIds()...)
	}
	slices.Sort(fans)
	if !slices.Equal(streamed, fans) || !slices.Equal(batches, []int{2, 2, 1}) {
		t.Fatalf("streamed %v in batches %v, want %v in [2 2 1]", streamed, batches, fans)
	}
	bad, err := c.StreamFollowerIDs(ctx, &userv1.StreamFollowerIDsRequest{UserId: star.GetUser().GetId(), BatchSize: 5001})
	if err == nil {
		_, err = bad.Recv()
	}
	wantCode(t, err, errs.ValidationFailed, "/batch_size")

	followed, err := c.GetFollowedIDs(ctx, &userv1.GetFollowedIDsRequest{FollowerId: fans[0]})
	if err != nil || !proto.Equal(followed, &userv1.GetFollowedIDsResponse{FolloweeIds: []string{star.GetUser().GetId()}}) {
		t.Fatalf("followed ids: %v, %v", followed, err)
	}
	users, err := c.GetUsers(ctx, &userv1.GetUsersRequest{Ids: fans[:2]})
	if err != nil || len(users.GetUsers()) != 2 {
		t.Fatalf("GetUsers: %v, %v", users, err)
	}
	if _, err := c.Unfollow(ctx, &userv1.UnfollowRequest{CallerId: fans[0], Username: "star"}); err != nil {
		t.Fatal(err)
	}
	own, _ = c.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: "star"}})
	if own.GetUser().GetFollowersCount() != 4 {
		t.Errorf("followers after an unfollow: %d", own.GetUser().GetFollowersCount())
	}
}
