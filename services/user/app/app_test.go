package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/user/adapters"
	"github.com/piazza-social/piazza/services/user/adapters/storetest"
	"github.com/piazza-social/piazza/services/user/app"
	"github.com/piazza-social/piazza/services/user/domain"
)

// ---------------------------------------------------------------------------------- fakes

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// issuer is a TokenIssuer that makes readable, unique tokens.
type issuer struct {
	clock *clock
	n     atomic.Int64
	fail  atomic.Bool
}

func (i *issuer) Issue(userID, sessionID string) (string, time.Time, error) {
	if i.fail.Load() {
		return "", time.Time{}, errors.New("signing key unavailable")
	}
	return fmt.Sprintf("access/%s/%s/%d", userID, sessionID, i.n.Add(1)), i.clock.Now().Add(15 * time.Minute), nil
}

type keys []byte

func (k keys) JWKS() []byte { return k }

// countingHasher counts verifications, to prove that every login spends exactly one.
type countingHasher struct {
	app.PasswordHasher
	verifies atomic.Int64
}

func (h *countingHasher) Verify(password, encoded string) (bool, error) {
	h.verifies.Add(1)
	return h.PasswordHasher.Verify(password, encoded)
}

// countingStore counts follower-id batch queries.
type countingStore struct {
	*adapters.Store
	followerIDQueries atomic.Int64
}

func (s *countingStore) FollowerIDs(ctx context.Context, userID, after string, limit int) ([]string, error) {
	s.followerIDQueries.Add(1)
	return s.Store.FollowerIDs(ctx, userID, after, limit)
}

type env struct {
	app    *app.Application
	clock  *clock
	issuer *issuer
	hasher *countingHasher
	store  *countingStore
	outbox *outboxtest.Outbox
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, ob, _ := storetest.OpenSQLiteStore(t)
	hasher, err := adapters.NewArgon2id(adapters.Argon2idParams{MemoryKiB: 64, Iterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		clock:  &clock{now: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)},
		hasher: &countingHasher{PasswordHasher: hasher},
		store:  &countingStore{Store: st},
		outbox: ob,
	}
	e.issuer = &issuer{clock: e.clock}
	e.app, err = app.New(app.Config{Now: e.clock.Now}, app.Deps{
		Store: e.store, Hasher: e.hasher, Tokens: e.issuer, Keys: keys(`{"keys":[]}`),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const password = "correct horse battery"

func (e *env) signUp(t *testing.T, username string) app.Auth {
	t.Helper()
	a, err := e.app.SignUp.Handle(t.Context(), app.SignUp{Username: username, Email: username + "@example.com", Password: password})
	if err != nil {
		t.Fatalf("sign up %s: %v", username, err)
	}
	return a
}

// wantErr asserts that err is an *errs.Error with code and, if given, exactly these field
// pointers.
func wantErr(t *testing.T, err error, code errs.Code, pointers ...string) *errs.Error {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("err = %v (%T), want *errs.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, code)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Pointer)
		if f.Detail == "" {
			t.Errorf("field %s has no detail", f.Pointer)
		}
	}
	if len(pointers) > 0 && !slices.Equal(got, pointers) {
		t.Fatalf("field pointers %v, want %v (%v)", got, pointers, err)
	}
	return e
}

func (e *env) checkSession(t *testing.T, a app.Auth) error {
	t.Helper()
	_, err := e.app.CheckSession.Handle(t.Context(), app.CheckSession{SessionID: a.SessionID, UserID: a.User.ID})
	return err
}

func (e *env) eventTypes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, ev := range e.outbox.Events(t) {
		out = append(out, ev.Envelope.Type)
	}
	return out
}

// ---------------------------------------------------------------------------------- sessions

func TestSignUpLoginRefreshThenReuseRevokesTheSession(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	signup := e.signUp(t, "Alice")
	if signup.User.Username != "alice" || signup.User.Email != "alice@example.com" || signup.User.ID == "" {
		t.Fatalf("signed-up user %+v", signup.User)
	}
	if !strings.HasPrefix(signup.AccessToken, "access/"+signup.User.ID+"/"+signup.SessionID+"/") || signup.RefreshToken == "" ||
		!signup.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(app.DefaultRefreshTTL)) {
		t.Fatalf("sign-up auth %+v", signup)
	}
	evs := e.outbox.Events(t)
	if len(evs) != 1 || evs[0].Topic != eventsv1.TopicUsers || evs[0].Envelope.Type != eventsv1.UserRegistered ||
		evs[0].Envelope.AggregateID != signup.User.ID || evs[0].Envelope.Producer != app.Producer {
		t.Fatalf("events after sign-up: %+v", evs)
	}
	var reg eventsv1.UserRegisteredPayload
	if err := evs[0].Envelope.DecodePayload(&reg); err != nil || reg.UserID != signup.User.ID || reg.Username != "alice" {
		t.Fatalf("user.registered payload %+v, %v", reg, err)
	}

	// Login by username (any case) and by email (any case) each start a new session.
	for _, login := range []string{"ALICE", "Alice@Example.com"} {
		l, err := e.app.Login.Handle(ctx, app.Login{Login: login, Password: password})
		if err != nil {
			t.Fatalf("login %q: %v", login, err)
		}
		if l.User.ID != signup.User.ID || l.SessionID == signup.SessionID || l.User.Email == "" {
			t.Fatalf("login %q: %+v", login, l)
		}
	}

	e.clock.Advance(time.Hour)
	r1, err := e.app.Refresh.Handle(ctx, app.Refresh{RefreshToken: signup.RefreshToken})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if r1.SessionID != signup.SessionID || r1.RefreshToken == signup.RefreshToken || r1.AccessToken == signup.AccessToken ||
		r1.User.ID != signup.User.ID || !r1.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(app.DefaultRefreshTTL)) {
		t.Fatalf("refresh answered %+v", r1)
	}
	if err := e.checkSession(t, r1); err != nil {
		t.Fatalf("session after refresh: %v", err)
	}

	// The spent token again: token_invalid, and the session is over for everyone.
	_, err = e.app.Refresh.Handle(ctx, app.Refresh{RefreshToken: signup.RefreshToken})
	wantErr(t, err, errs.TokenInvalid)
	wantErr(t, e.checkSession(t, r1), errs.TokenInvalid)
	_, err = e.app.Refresh.Handle(ctx, app.Refresh{RefreshToken: r1.RefreshToken})
	wantErr(t, err, errs.TokenInvalid)
}

func TestWrongPasswordAndUnknownAccountFailAlikeAndCostOneHashEach(t *testing.T) {
	e := newEnv(t)
	e.signUp(t, "alice")
	tests := []struct{ name, login, password string }{
		{"wrong password", "alice", "wrong password!"},
		{"wrong password by email", "alice@example.com", "wrong password!"},
		{"unknown username", "bob", password},
		{"unknown email", "bob@example.com", password},
		{"login that cannot be an account", "no such thing!", password},
	}
	var first *errs.Error
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.hasher.verifies.Load()
			_, err := e.app.Login.Handle(t.Context(), app.Login{Login: tc.login, Password: tc.password})
			got := wantErr(t, err, errs.Unauthenticated)
			if first == nil {
				first = got
			} else if got.Message != first.Message || len(got.Fields) != 0 {
				t.Errorf("error %+v differs from %+v", got, first)
			}
			if n := e.hasher.verifies.Load() - before; n != 1 {
				t.Errorf("%d password verifications, want exactly 1", n)
			}
		})
	}
}

func TestRefreshRejectsMalformedUnknownAndExpiredTokens(t *testing.T) {
	e := newEnv(t)
	a := e.signUp(t, "alice")
	unknown, _ := domain.NewRefreshToken()
	for name, tok := range map[string]string{
		"malformed": "not a token",
		"truncated": a.RefreshToken[:20],
		"unknown":   unknown,
	} {
		_, err := e.app.Refresh.Handle(t.Context(), app.Refresh{RefreshToken: tok})
		if got := wantErr(t, err, errs.TokenInvalid); got.Message == "" {
			t.Errorf("%s: no message", name)
		}
	}
	e.clock.Advance(app.DefaultRefreshTTL + time.Second)
	_, err := e.app.Refresh.Handle(t.Context(), app.Refresh{RefreshToken: a.RefreshToken})
	wantErr(t, err, errs.TokenInvalid)
	wantErr(t, e.checkSession(t, a), errs.TokenInvalid)
}

func TestLogoutRevokesTheSessionAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	a := e.signUp(t, "alice")
	other, err := e.app.Login.Handle(t.Context(), app.Login{Login: "alice", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := domain.NewRefreshToken()
	for _, tok := range []string{a.RefreshToken, a.RefreshToken, unknown, "garbage"} {
		if _, err := e.app.Logout.Handle(t.Context(), app.Logout{RefreshToken: tok}); err != nil {
			t.Fatalf("logout %q: %v", tok, err)
		}
	}
	wantErr(t, e.checkSession(t, a), errs.TokenInvalid)
	_, err = e.app.Refresh.Handle(t.Context(), app.Refresh{RefreshToken: a.RefreshToken})
	wantErr(t, err, errs.TokenInvalid)
	if err := e.checkSession(t, other); err != nil {
		t.Errorf("the other session of the account: %v", err)
	}
}

func TestCheckSessionRejectsAnotherUsersOrUnknownSession(t *testing.T) {
	e := newEnv(t)
	a, b := e.signUp(t, "alice"), e.signUp(t, "bob")
	for name, q := range map[string]app.CheckSession{
		"another user's session": {SessionID: a.SessionID, UserID: b.User.ID},
		"unknown session":        {SessionID: "0190a0c4-0000-7000-8000-000000000000", UserID: a.User.ID},
		"malformed session id":   {SessionID: "junk", UserID: a.User.ID},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.app.CheckSession.Handle(t.Context(), q)
			wantErr(t, err, errs.TokenInvalid)
		})
	}
}

// ---------------------------------------------------------------------------------- accounts

func TestSignUpValidationNamesEveryBadField(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name                      string
		username, email, password string
		pointers                  []string
	}{
		{"short username", "al", "al@example.com", password, []string{"/username"}},
		{"username with a dash", "al-ice", "al@example.com", password, []string{"/username"}},
		{"bad email", "alice", "alice(at)example.com", password, []string{"/email"}},
		{"short password", "alice", "alice@example.com", "short", []string{"/password"}},
		{"common password", "alice", "alice@example.com", "Password123", []string{"/password"}},
		{"everything", "", "", "", []string{"/username", "/email", "/password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.app.SignUp.Handle(t.Context(), app.SignUp{Username: tc.username, Email: tc.email, Password: tc.password})
			wantErr(t, err, errs.ValidationFailed, tc.pointers...)
		})
	}
	if n := len(e.outbox.Events(t)); n != 0 {
		t.Errorf("%d events after failed sign-ups", n)
	}
}

func TestSignUpConflictsNameTheTakenField(t *testing.T) {
	e := newEnv(t)
	e.signUp(t, "alice")
	_, err := e.app.SignUp.Handle(t.Context(), app.SignUp{Username: "ALICE", Email: "other@example.com", Password: password})
	wantErr(t, err, errs.Conflict, "/username")
	_, err = e.app.SignUp.Handle(t.Context(), app.SignUp{Username: "alice2", Email: "ALICE@example.COM", Password: password})
	wantErr(t, err, errs.Conflict, "/email")
}

func TestFailingTokenIssuerIsInternalAndCreatesNoAccount(t *testing.T) {
	e := newEnv(t)
	e.issuer.fail.Store(true)
	_, err := e.app.SignUp.Handle(t.Context(), app.SignUp{Username: "alice", Email: "alice@example.com", Password: password})
	if got := wantErr(t, err, errs.Internal); strings.Contains(got.Message, "signing key") {
		t.Errorf("internal message leaks the cause: %q", got.Message)
	}
	e.issuer.fail.Store(false)
	e.signUp(t, "alice")
}

func TestGetUserShowsTheEmailOnlyToTheUserThemself(t *testing.T) {
	e := newEnv(t)
	a, b := e.signUp(t, "alice"), e.signUp(t, "bob")
	ctx := t.Context()

	u, err := e.app.GetUser.Handle(ctx, app.GetUser{Username: "Alice", CallerID: a.User.ID})
	if err != nil || u.Email != "alice@example.com" {
		t.Fatalf("own profile: %+v, %v", u, err)
	}
	u, err = e.app.GetUser.Handle(ctx, app.GetUser{ID: a.User.ID, CallerID: b.User.ID})
	if err != nil || u.Email != "" || u.Username != "alice" {
		t.Fatalf("someone else's profile: %+v, %v", u, err)
	}
	for _, q := range []app.GetUser{{Username: "carol"}, {Username: "not valid!"}, {ID: "junk"}} {
		_, err := e.app.GetUser.Handle(ctx, q)
		wantErr(t, err, errs.NotFound)
	}
	users, err := e.app.GetUsers.Handle(ctx, app.GetUsers{IDs: []string{a.User.ID, b.User.ID, "junk"}})
	if err != nil || len(users) != 2 || users[0].Email != "" || users[1].Email != "" {
		t.Fatalf("GetUsers: %+v, %v", users, err)
	}
	_, err = e.app.GetUsers.Handle(ctx, app.GetUsers{IDs: make([]string, domain.MaxUsersPerLookup+1)})
	wantErr(t, err, errs.ValidationFailed, "/ids")
}

func TestUpdateProfileValidatesLengthsAndChangesOnlyGivenFields(t *testing.T) {
	e := newEnv(t)
	a := e.signUp(t, "alice")
	long := strings.Repeat("é", domain.DisplayNameMaxRunes+1)
	bio := strings.Repeat("b", domain.BioMaxRunes+1)
	_, err := e.app.UpdateProfile.Handle(t.Context(), app.UpdateProfile{CallerID: a.User.ID, DisplayName: &long, Bio: &bio})
	wantErr(t, err, errs.ValidationFailed, "/display_name", "/bio")

	name := strings.Repeat("é", domain.DisplayNameMaxRunes)
	u, err := e.app.UpdateProfile.Handle(t.Context(), app.UpdateProfile{CallerID: a.User.ID, DisplayName: &name})
	if err != nil || u.DisplayName != name || u.Bio != "" {
		t.Fatalf("update: %+v, %v", u, err)
	}
	_, err = e.app.UpdateProfile.Handle(t.Context(), app.UpdateProfile{CallerID: "0190a0c4-0000-7000-8000-000000000000", DisplayName: &name})
	wantErr(t, err, errs.Unauthenticated)
}

// ---------------------------------------------------------------------------------- follows

func TestFollowEmitsAnEventOnlyWhenSomethingChanged(t *testing.T) {
	e := newEnv(t)
	a, b := e.signUp(t, "alice"), e.signUp(t, "bob")
	ctx := t.Context()
	follow := app.Follow{CallerID: a.User.ID, Username: "BOB"}
	for range 2 {
		if _, err := e.app.Follow.Handle(ctx, follow); err != nil {
			t.Fatal(err)
		}
	}
	bob, _ := e.app.GetUser.Handle(ctx, app.GetUser{ID: b.User.ID})
	if bob.FollowersCount != 1 {
		t.Fatalf("bob has %d followers, want 1", bob.FollowersCount)
	}
	for range 2 {
		if _, err := e.app.Unfollow.Handle(ctx, app.Unfollow{CallerID: a.User.ID, Username: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{eventsv1.UserRegistered, eventsv1.UserRegistered, eventsv1.UserFollowed, eventsv1.UserUnfollowed}
	if got := e.eventTypes(t); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	evs := e.outbox.Events(t)
	var followed eventsv1.UserFollowedPayload
	if err := evs[2].Envelope.DecodePayload(&followed); err != nil ||
		followed != (eventsv1.UserFollowedPayload{FollowerID: a.User.ID, FollowerUsername: "alice", FolloweeID: b.User.ID}) ||
		evs[2].Envelope.AggregateID != a.User.ID {
		t.Fatalf("user.followed %+v (aggregate %s), %v", followed, evs[2].Envelope.AggregateID, err)
	}

	_, err := e.app.Follow.Handle(ctx, app.Follow{CallerID: a.User.ID, Username: "alice"})
	wantErr(t, err, errs.ValidationFailed, "/username")
	_, err = e.app.Follow.Handle(ctx, app.Follow{CallerID: a.User.ID, Username: "nobody"})
	wantErr(t, err, errs.NotFound)
	_, err = e.app.Unfollow.Handle(ctx, app.Unfollow{CallerID: a.User.ID, Username: "nobody"})
	wantErr(t, err, errs.NotFound)
	_, err = e.app.Follow.Handle(ctx, app.Follow{CallerID: "0190a0c4-0000-7000-8000-000000000000", Username: "bob"})
	wantErr(t, err, errs.Unauthenticated)
}

func TestFollowListsPageThroughOpaqueCursorsAndRejectBadOnes(t *testing.T) {
	e := newEnv(t)
	e.signUp(t, "star")
	var want []string
	for i := range 5 {
		f := e.signUp(t, fmt.Sprintf("fan%d", i))
		e.clock.Advance(time.Second)
		if _, err := e.app.Follow.Handle(t.Context(), app.Follow{CallerID: f.User.ID, Username: "star"}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{f.User.Username}, want...) // newest first
	}
	var (
		got    []string
		cursor string
	)
	for range 5 {
		p, err := e.app.ListFollowers.Handle(t.Context(), app.ListFollows{Username: "star", Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range p.Users {
			got = append(got, u.Username)
			if u.Email != "" {
				t.Errorf("list shows %s's email", u.Username)
			}
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("followers %v, want %v", got, want)
	}
	following, err := e.app.ListFollowing.Handle(t.Context(), app.ListFollows{Username: "fan0"})
	if err != nil || len(following.Users) != 1 || following.Users[0].Username != "star" || following.NextCursor != "" {
		t.Fatalf("fan0 follows %+v, %v", following, err)
	}

	_, err = e.app.ListFollowers.Handle(t.Context(), app.ListFollows{Username: "star", Cursor: "!!", Limit: 101})
	wantErr(t, err, errs.ValidationFailed, "/limit", "/cursor")
	_, err = e.app.ListFollowers.Handle(t.Context(), app.ListFollows{Username: "star", Limit: -1})
	wantErr(t, err, errs.ValidationFailed, "/limit")
	_, err = e.app.ListFollowing.Handle(t.Context(), app.ListFollows{Username: "nobody"})
	wantErr(t, err, errs.NotFound)
}

func TestStreamFollowerIDsReadsOneBatchPerQuery(t *testing.T) {
	e := newEnv(t)
	star := e.signUp(t, "star")
	var want []string
	for i := range 7 {
		f := e.signUp(t, fmt.Sprintf("fan%d", i))
		if _, err := e.app.Follow.Handle(t.Context(), app.Follow{CallerID: f.User.ID, Username: "star"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, f.User.ID)
	}
	slices.Sort(want)

	var (
		got   []string
		sizes []int
	)
	_, err := e.app.StreamFollowerIDs.Handle(t.Context(), app.StreamFollowerIDs{UserID: star.User.ID, BatchSize: 3, Batch: func(ids []string) error {
		sizes = append(sizes, len(ids))
		got = append(got, ids...)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Fatalf("batches %v of %v, want [3 3 1] of %v", sizes, got, want)
	}
	if n := e.store.followerIDQueries.Load(); n != 3 {
		t.Errorf("%d queries for 3 batches", n)
	}

	stop := errors.New("client went away")
	calls := 0
	_, err = e.app.StreamFollowerIDs.Handle(t.Context(), app.StreamFollowerIDs{UserID: star.User.ID, BatchSize: 3, Batch: func([]string) error {
		calls++
		return stop
	}})
	if err == nil || calls != 1 {
		t.Fatalf("a failing batch callback: err %v after %d calls, want an error after 1", err, calls)
	}
	_, err = e.app.StreamFollowerIDs.Handle(t.Context(), app.StreamFollowerIDs{UserID: star.User.ID, BatchSize: domain.MaxFollowerBatch + 1})
	wantErr(t, err, errs.ValidationFailed, "/batch_size")
	_, err = e.app.StreamFollowerIDs.Handle(t.Context(), app.StreamFollowerIDs{UserID: "0190a0c4-0000-7000-8000-000000000000"})
	wantErr(t, err, errs.NotFound)

	ids, err := e.app.GetFollowedIDs.Handle(t.Context(), app.GetFollowedIDs{FollowerID: want[0]})
	if err != nil || !slices.Equal(ids, []string{star.User.ID}) {
		t.Fatalf("GetFollowedIDs = %v, %v", ids, err)
	}
}

func TestEveryDomainErrorKindHasACode(t *testing.T) {
	for _, k := range domain.Kinds() {
		if c := app.CodeOf(k); c == errs.Internal || !c.Known() {
			t.Errorf("kind %d maps to %q", k, c)
		}
	}
}

func TestSigningKeysArePublished(t *testing.T) {
	e := newEnv(t)
	got, err := e.app.SigningKeys.Handle(t.Context(), app.None{})
	if err != nil || string(got) != `{"keys":[]}` {
		t.Fatalf("SigningKeys = %s, %v", got, err)
	}
}
