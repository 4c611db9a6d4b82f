package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/user/adapters"
	"github.com/piazza-social/piazza/services/user/domain"
)

// Run runs the store contract. newDB(t) must return a fresh, empty database for t, closed and
// dropped when t ends.
func Run(t *testing.T, newDB func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreatedUserReadsBackByIDUsernameAndEmail", testCreateAndRead},
		{"UsernameAndEmailAreUnique", testUniqueness},
		{"ConcurrentSignUpsForOneUsernameLetExactlyOneWin", testConcurrentSignUps},
		{"FailingOutboxRollsBackSignUp", testOutboxFailureRollsBackSignUp},
		{"ProfileUpdateChangesOnlyGivenFields", testUpdateProfile},
		{"FollowAndUnfollowAreIdempotentAndCountsDoNotDrift", testFollowIdempotent},
		{"ConcurrentRepeatedFollowsCountOnce", testConcurrentFollows},
		{"MutualFollowsRaceWithoutDeadlockOrDrift", testMutualFollows},
		{"FollowLimitHoldsUnderConcurrency", testFollowLimit},
		{"FailingOutboxRollsBackFollowAndUnfollow", testOutboxFailureRollsBackFollow},
		{"FollowersPageNewestFirstWithoutDuplicatesOrSkipsUnderConcurrentInserts", testListFollowers},
		{"FollowingPagesNewestFirstWithoutDuplicatesOrSkipsUnderConcurrentInserts", testListFollowing},
		{"FollowerIDsComeInBatchesByID", testFollowerIDBatches},
		{"FollowedIDsListsEveryFollowee", testFollowedIDs},
		{"RefreshTokenRotationAndReuseRevokesSession", testSessionLifecycle},
		{"ExpiredTokenOrSessionCannotRotate", testExpiry},
		{"ConcurrentDoubleSpendOfOneRefreshTokenHasExactlyOneWinner", testDoubleSpend},
		{"RevokeByTokenIsIdempotent", testRevokeByToken},
		{"PurgeExpiredDeletesOnlyExpiredSessionsAndTokens", testPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			st, ob := OpenStore(t, db)
			tc.fn(t, &harness{st: st, ob: ob, db: db})
		})
	}
}

// t0 is the base time of the tests: microsecond precision, as both engines store.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

const ttl = 30 * 24 * time.Hour

type harness struct {
	st *adapters.Store
	ob *outboxtest.Outbox
	db *database.DB
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newID(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func envelope(t testing.TB, typ, aggregate string, payload any) events.Envelope {
	t.Helper()
	env, err := events.New(typ, aggregate, "user-service", payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// account is what newAccount made: the user and its first session's refresh-token hash.
type account struct {
	domain.User
	SessionID string
	TokenHash []byte
}

func (h *harness) newAccount(t *testing.T, username string) account {
	t.Helper()
	a, err := h.tryAccount(t, username, username+"@example.com")
	if err != nil {
		t.Fatalf("create %s: %v", username, err)
	}
	return a
}

func (h *harness) tryAccount(t *testing.T, username, email string) (account, error) {
	t.Helper()
	u := domain.User{ID: newID(t), Username: username, Email: email, CreatedAt: t0}
	sess := domain.Session{ID: newID(t), UserID: u.ID, CreatedAt: t0, ExpiresAt: t0.Add(ttl)}
	_, hash := domain.NewRefreshToken()
	tok := domain.RefreshToken{Hash: hash, SessionID: sess.ID, CreatedAt: t0, ExpiresAt: t0.Add(ttl)}
	ev := envelope(t, eventsv1.UserRegistered, u.ID, eventsv1.UserRegisteredPayload{UserID: u.ID, Username: username})
	err := h.st.CreateUser(ctxFor(t), u, "phc:"+username, sess, tok, ev)
	return account{User: u, SessionID: sess.ID, TokenHash: hash}, err
}

func (h *harness) newSession(t *testing.T, userID string, now time.Time, sessionTTL, tokenTTL time.Duration) (string, []byte) {
	t.Helper()
	sess := domain.Session{ID: newID(t), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(sessionTTL)}
	_, hash := domain.NewRefreshToken()
	tok := domain.RefreshToken{Hash: hash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: now.Add(tokenTTL)}
	if err := h.st.CreateSession(ctxFor(t), sess, tok); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return sess.ID, hash
}

func (h *harness) user(t *testing.T, id string) domain.User {
	t.Helper()
	u, err := h.st.UserByID(ctxFor(t), id)
	if err != nil {
		t.Fatalf("read user %s: %v", id, err)
	}
	return u
}

func (h *harness) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := h.db.SQL().QueryRowContext(ctxFor(t), q, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return n
}

// checkCounts asserts that each user's counters equal the rows of the follow table.
func (h *harness) checkCounts(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		u := h.user(t, id)
		following := h.count(t, `SELECT count(*) FROM follows WHERE follower_id = $1`, id)
		followers := h.count(t, `SELECT count(*) FROM follows WHERE followee_id = $1`, id)
		if u.FollowingCount != following || u.FollowersCount != followers {
			t.Errorf("%s: counters following=%d followers=%d, rows following=%d followers=%d",
				u.Username, u.FollowingCount, u.FollowersCount, following, followers)
		}
	}
}

func (h *harness) eventTypes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range h.ob.Events(t) {
		if e.Topic != eventsv1.TopicUsers {
			t.Errorf("event %s on topic %q, want %q", e.Envelope.Type, e.Topic, eventsv1.TopicUsers)
		}
		out = append(out, e.Envelope.Type)
	}
	return out
}

func (h *harness) tryFollow(t *testing.T, follower, followee string, at time.Time) (bool, error) {
	t.Helper()
	return h.st.Follow(ctxFor(t), follower, followee, at, domain.MaxFollowing,
		envelope(t, eventsv1.UserFollowed, follower, eventsv1.UserFollowedPayload{FollowerID: follower, FolloweeID: followee}))
}

func (h *harness) follow(t *testing.T, follower, followee string, at time.Time) bool {
	t.Helper()
	created, err := h.tryFollow(t, follower, followee, at)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	return created
}

func (h *harness) tryUnfollow(t *testing.T, follower, followee string) (bool, error) {
	t.Helper()
	return h.st.Unfollow(ctxFor(t), follower, followee,
		envelope(t, eventsv1.UserUnfollowed, follower, eventsv1.UserUnfollowedPayload{FollowerID: follower, FolloweeID: followee}))
}

func (h *harness) unfollow(t *testing.T, follower, followee string) bool {
	t.Helper()
	removed, err := h.tryUnfollow(t, follower, followee)
	if err != nil {
		t.Fatalf("unfollow: %v", err)
	}
	return removed
}

// parallel runs fn(i) for i in [0,n) concurrently, started together, and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// ---------------------------------------------------------------------------------- accounts

func testCreateAndRead(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice := h.newAccount(t, "alice")
	bob := h.newAccount(t, "bob")

	for name, get := range map[string]func() (domain.User, error){
		"by id":       func() (domain.User, error) { return h.st.UserByID(ctx, alice.ID) },
		"by username": func() (domain.User, error) { return h.st.UserByUsername(ctx, "alice") },
		"credentials by username": func() (domain.User, error) {
			u, hash, err := h.st.CredentialsByUsername(ctx, "alice")
			if err == nil && hash != "phc:alice" {
				err = fmt.Errorf("hash %q", hash)
			}
			return u, err
		},
		"credentials by email": func() (domain.User, error) {
			u, hash, err := h.st.CredentialsByEmail(ctx, "alice@example.com")
			if err == nil && hash != "phc:alice" {
				err = fmt.Errorf("hash %q", hash)
			}
			return u, err
		},
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != alice.ID || got.Username != "alice" || got.Email != "alice@example.com" ||
			!got.CreatedAt.Equal(t0) || got.CreatedAt.Location() != time.UTC || got.FollowersCount != 0 {
			t.Errorf("%s: got %+v", name, got)
		}
	}

	for name, get := range map[string]func() error{
		"unknown username": func() error { _, err := h.st.UserByUsername(ctx, "carol"); return err },
		"unknown id":       func() error { _, err := h.st.UserByID(ctx, newID(t)); return err },
		"malformed id":     func() error { _, err := h.st.UserByID(ctx, "not-a-uuid"); return err },
		"unknown email":    func() error { _, _, err := h.st.CredentialsByEmail(ctx, "carol@example.com"); return err },
	} {
		if err := get(); !errors.Is(err, domain.ErrUserNotFound) {
			t.Errorf("%s: err = %v, want ErrUserNotFound", name, err)
		}
	}

	users, err := h.st.UsersByIDs(ctx, []string{alice.ID, bob.ID, alice.ID, "junk", newID(t)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("UsersByIDs = %v, want alice and bob once each", names)
	}
	if got := h.eventTypes(t); !slices.Equal(got, []string{eventsv1.UserRegistered, eventsv1.UserRegistered}) {
		t.Errorf("events = %v, want two user.registered", got)
	}
}

func testUniqueness(t *testing.T, h *harness) {
	h.newAccount(t, "alice")
	tests := []struct {
		name, username, email string
		want                  []string // fields reported taken
	}{
		{"username taken", "alice", "other@example.com", []string{"username"}},
		{"email taken", "alice2", "alice@example.com", []string{"email"}},
		{"both taken", "alice", "alice@example.com", []string{"username", "email"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.tryAccount(t, tc.username, tc.email)
			var got []string
			for _, fe := range domain.FieldErrors(err) {
				got = append(got, fe.Field)
				want := map[string]error{"username": domain.ErrUsernameTaken, "email": domain.ErrEmailTaken}[fe.Field]
				if !errors.Is(fe, want) {
					t.Errorf("field %s: %v, want %v", fe.Field, fe.Err, want)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("err = %v, fields %v, want fields %v", err, got, tc.want)
			}
		})
	}
	// The store only holds normalised usernames: a mixed-case one is refused, so "Alice" can
	// never sit beside "alice".
	if _, err := h.tryAccount(t, "Alice", "upper@example.com"); err == nil {
		t.Error("a mixed-case username was stored")
	}
	if n := h.count(t, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
	if n := h.count(t, `SELECT count(*) FROM sessions`); n != 1 {
		t.Errorf("%d sessions, want only the first account's", n)
	}
	if got := h.eventTypes(t); len(got) != 1 {
		t.Errorf("events = %v, want only the first sign-up's", got)
	}
}

func testConcurrentSignUps(t *testing.T, h *harness) {
	const n = 8
	errs := parallel(n, func(i int) error {
		_, err := h.tryAccount(t, "carol", fmt.Sprintf("carol%d@example.com", i))
		return err
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, domain.ErrUsernameTaken):
			t.Errorf("loser got %v, want ErrUsernameTaken", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d sign-ups for one username succeeded, want 1", wins)
	}
}

func testOutboxFailureRollsBackSignUp(t *testing.T, h *harness) {
	h.ob.FailWith(errors.New("outbox down"))
	if _, err := h.tryAccount(t, "dave", "dave@example.com"); err == nil {
		t.Fatal("sign-up succeeded although its event could not be recorded")
	}
	if _, err := h.st.UserByUsername(ctxFor(t), "dave"); !errors.Is(err, domain.ErrUserNotFound) {
		t.Fatalf("after a failed sign-up: %v, want ErrUserNotFound", err)
	}
	if k := h.ob.Kicks(); k != 0 {
		t.Errorf("outbox kicked %d times for a rolled-back sign-up", k)
	}
	h.ob.FailWith(nil)
	h.newAccount(t, "dave") // nothing of the failed attempt is left in the way
	if got := h.eventTypes(t); len(got) != 1 {
		t.Errorf("events = %v, want one", got)
	}
}

func testUpdateProfile(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a := h.newAccount(t, "alice")
	name, bio, empty := "Alice A.", "Hello ✌️", ""

	u, err := h.st.UpdateProfile(ctx, a.ID, domain.ProfileUpdate{DisplayName: &name}, t0.Add(time.Minute))
	if err != nil || u.DisplayName != name || u.Bio != "" || u.Username != "alice" {
		t.Fatalf("display name only: %+v, %v", u, err)
	}
	u, err = h.st.UpdateProfile(ctx, a.ID, domain.ProfileUpdate{Bio: &bio}, t0.Add(2*time.Minute))
	if err != nil || u.DisplayName != name || u.Bio != bio {
		t.Fatalf("bio only: %+v, %v", u, err)
	}
	u, err = h.st.UpdateProfile(ctx, a.ID, domain.ProfileUpdate{}, t0.Add(3*time.Minute))
	if err != nil || u.DisplayName != name || u.Bio != bio {
		t.Fatalf("empty update: %+v, %v", u, err)
	}
	u, err = h.st.UpdateProfile(ctx, a.ID, domain.ProfileUpdate{DisplayName: &empty}, t0.Add(4*time.Minute))
	if err != nil || u.DisplayName != "" || u.Bio != bio {
		t.Fatalf("clearing the display name: %+v, %v", u, err)
	}
	if got := h.user(t, a.ID); got.DisplayName != "" || got.Bio != bio {
		t.Errorf("read back %+v", got)
	}
	if _, err := h.st.UpdateProfile(ctx, newID(t), domain.ProfileUpdate{Bio: &bio}, t0); !errors.Is(err, domain.ErrUserNotFound) {
		t.Errorf("unknown user: %v, want ErrUserNotFound", err)
	}
}

// ---------------------------------------------------------------------------------- follows

func testFollowIdempotent(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a, b := h.newAccount(t, "alice"), h.newAccount(t, "bob")

	if !h.follow(t, a.ID, b.ID, t0) {
		t.Fatal("first follow not reported as new")
	}
	if h.follow(t, a.ID, b.ID, t0.Add(time.Second)) {
		t.Fatal("repeated follow reported as new")
	}
	if ua, ub := h.user(t, a.ID), h.user(t, b.ID); ua.FollowingCount != 1 || ub.FollowersCount != 1 || ua.FollowersCount != 0 || ub.FollowingCount != 0 {
		t.Fatalf("after follow: alice %+v, bob %+v", ua, ub)
	}
	if !h.unfollow(t, a.ID, b.ID) {
		t.Fatal("unfollow of an existing follow not reported")
	}
	if h.unfollow(t, a.ID, b.ID) {
		t.Fatal("repeated unfollow reported as a removal")
	}
	h.checkCounts(t, a.ID, b.ID)
	if ua := h.user(t, a.ID); ua.FollowingCount != 0 {
		t.Fatalf("after unfollow: %+v", ua)
	}
	want := []string{eventsv1.UserRegistered, eventsv1.UserRegistered, eventsv1.UserFollowed, eventsv1.UserUnfollowed}
	if got := h.eventTypes(t); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v (one per actual change)", got, want)
	}
	if k := h.ob.Kicks(); k != len(want) {
		t.Errorf("outbox kicked %d times, want once per committed change (%d)", k, len(want))
	}

	if _, err := h.st.Follow(ctx, a.ID, a.ID, t0, domain.MaxFollowing); !errors.Is(err, domain.ErrFollowSelf) {
		t.Errorf("follow self: %v, want ErrFollowSelf", err)
	}
	if _, err := h.st.Follow(ctx, a.ID, newID(t), t0, domain.MaxFollowing); !errors.Is(err, domain.ErrUserNotFound) {
		t.Errorf("follow unknown: %v, want ErrUserNotFound", err)
	}
	if removed, err := h.st.Unfollow(ctx, a.ID, newID(t)); err != nil || removed {
		t.Errorf("unfollow unknown: %v %v, want false, nil", removed, err)
	}
}

func testConcurrentFollows(t *testing.T, h *harness) {
	a, b := h.newAccount(t, "alice"), h.newAccount(t, "bob")
	const n = 8
	var (
		mu     sync.Mutex
		wins   int
		losses int
	)
	errs := parallel(n, func(int) error {
		created, err := h.st.Follow(ctxFor(t), a.ID, b.ID, t0, domain.MaxFollowing)
		mu.Lock()
		defer mu.Unlock()
		if created {
			wins++
		}
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent follow: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent follows reported new, want 1", wins)
	}
	h.checkCounts(t, a.ID, b.ID)
	errs = parallel(n, func(int) error {
		removed, err := h.st.Unfollow(ctxFor(t), a.ID, b.ID)
		mu.Lock()
		defer mu.Unlock()
		if removed {
			losses++
		}
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent unfollow: %v", err)
		}
	}
	if losses != 1 {
		t.Fatalf("%d concurrent unfollows reported a removal, want 1", losses)
	}
	h.checkCounts(t, a.ID, b.ID)
}

func testMutualFollows(t *testing.T, h *harness) {
	a, b := h.newAccount(t, "alice"), h.newAccount(t, "bob")
	pairs := [][2]string{{a.ID, b.ID}, {b.ID, a.ID}}
	errs := parallel(4, func(i int) error {
		p := pairs[i%2]
		for j := range 10 {
			if _, err := h.st.Follow(ctxFor(t), p[0], p[1], t0.Add(time.Duration(j)*time.Second), domain.MaxFollowing); err != nil {
				return err
			}
			if _, err := h.st.Unfollow(ctxFor(t), p[0], p[1]); err != nil {
				return err
			}
		}
		_, err := h.st.Follow(ctxFor(t), p[0], p[1], t0.Add(time.Minute), domain.MaxFollowing)
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("mutual follows: %v", err)
		}
	}
	h.checkCounts(t, a.ID, b.ID)
	if ua := h.user(t, a.ID); ua.FollowingCount != 1 || ua.FollowersCount != 1 {
		t.Errorf("alice %+v, want following 1, followers 1", ua)
	}
}

func testFollowLimit(t *testing.T, h *harness) {
	const limit = 3
	a := h.newAccount(t, "alice")
	var targets []string
	for i := range 6 {
		targets = append(targets, h.newAccount(t, fmt.Sprintf("target%d", i)).ID)
	}
	errs := parallel(len(targets), func(i int) error {
		_, err := h.st.Follow(ctxFor(t), a.ID, targets[i], t0, limit)
		return err
	})
	ok, limited := 0, 0
	var followed []string
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			followed = append(followed, targets[i])
		case errors.Is(err, domain.ErrFollowLimitReached):
			limited++
		default:
			t.Fatalf("follow: %v", err)
		}
	}
	if ok != limit || limited != len(targets)-limit {
		t.Fatalf("%d follows succeeded and %d hit the limit, want %d and %d", ok, limited, limit, len(targets)-limit)
	}
	h.checkCounts(t, append([]string{a.ID}, targets...)...)
	// At the limit, repeating an existing follow is still a no-op, not an error.
	if created, err := h.st.Follow(ctxFor(t), a.ID, followed[0], t0, limit); err != nil || created {
		t.Fatalf("repeated follow at the limit: %v %v", created, err)
	}
	// Unfollowing one makes room for another.
	h.unfollow(t, a.ID, followed[0])
	notFollowed := slices.DeleteFunc(slices.Clone(targets), func(id string) bool { return slices.Contains(followed, id) })
	if created, err := h.st.Follow(ctxFor(t), a.ID, notFollowed[0], t0, limit); err != nil || !created {
		t.Fatalf("follow after making room: %v %v", created, err)
	}
}

func testOutboxFailureRollsBackFollow(t *testing.T, h *harness) {
	a, b := h.newAccount(t, "alice"), h.newAccount(t, "bob")
	h.ob.FailWith(errors.New("outbox down"))
	if _, err := h.tryFollow(t, a.ID, b.ID, t0); err == nil {
		t.Fatal("follow succeeded although its event could not be recorded")
	}
	if n := h.count(t, `SELECT count(*) FROM follows`); n != 0 {
		t.Fatalf("%d follow rows after a rolled-back follow", n)
	}
	h.checkCounts(t, a.ID, b.ID)

	h.ob.FailWith(nil)
	h.follow(t, a.ID, b.ID, t0)
	h.ob.FailWith(errors.New("outbox down"))
	if _, err := h.tryUnfollow(t, a.ID, b.ID); err == nil {
		t.Fatal("unfollow succeeded although its event could not be recorded")
	}
	if n := h.count(t, `SELECT count(*) FROM follows`); n != 1 {
		t.Fatalf("%d follow rows after a rolled-back unfollow, want 1", n)
	}
	h.checkCounts(t, a.ID, b.ID)
}

// listCase describes one direction of the follow graph for the pagination test.
type listCase struct {
	list func(h *harness, ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error)
	// link makes the listed account `other` appear in the list of `owner` at time at.
	link func(t *testing.T, h *harness, owner, other string, at time.Time)
}

var followersList = listCase{
	list: func(h *harness, ctx context.Context, id string, after domain.Cursor, limit int) (domain.FollowPage, error) {
		return h.st.ListFollowers(ctx, id, after, limit)
	},
	link: func(t *testing.T, h *harness, owner, other string, at time.Time) { h.follow(t, other, owner, at) },
}

var followingList = listCase{
	list: func(h *harness, ctx context.Context, id string, after domain.Cursor, limit int) (domain.FollowPage, error) {
		return h.st.ListFollowing(ctx, id, after, limit)
	},
	link: func(t *testing.T, h *harness, owner, other string, at time.Time) { h.follow(t, owner, other, at) },
}

func testListFollowers(t *testing.T, h *harness) { testList(t, h, followersList) }
func testListFollowing(t *testing.T, h *harness) { testList(t, h, followingList) }

func testList(t *testing.T, h *harness, lc listCase) {
	ctx := ctxFor(t)
	owner := h.newAccount(t, "owner")
	type entry struct {
		at time.Time
		id string
	}
	var want []entry
	for i := range 25 {
		a := h.newAccount(t, fmt.Sprintf("user%02d", i))
		at := t0.Add(time.Duration(i) * time.Second)
		if i >= 22 { // a few follows made in the same microsecond: the id breaks the tie
			at = t0.Add(22 * time.Second)
		}
		lc.link(t, h, owner.ID, a.ID, at)
		want = append(want, entry{at, a.ID})
	}
	slices.SortFunc(want, func(x, y entry) int {
		if c := y.at.Compare(x.at); c != 0 {
			return c
		}
		return strings.Compare(y.id, x.id)
	})

	var (
		got    []string
		cursor string
		sizes  []int
	)
	for page := 0; ; page++ {
		after, err := domain.ParseCursor(cursor) // the cursor travels through the client as text
		if err != nil {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
		p, err := lc.list(h, ctx, owner.ID, after, 10)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		sizes = append(sizes, len(p.Users))
		for _, u := range p.Users {
			got = append(got, u.ID)
		}
		if p.Next.IsZero() {
			break
		}
		cursor = p.Next.Encode()
		// New entries arrive between pages; they are newer than everything listed so far.
		newcomer := h.newAccount(t, fmt.Sprintf("late%d", page))
		lc.link(t, h, owner.ID, newcomer.ID, t0.Add(time.Hour+time.Duration(page)*time.Second))
		if page > 10 {
			t.Fatal("pagination does not end")
		}
	}
	wantIDs := make([]string, len(want))
	for i, e := range want {
		wantIDs[i] = e.id
	}
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("paged ids:\n got %v\nwant %v", got, wantIDs)
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", sizes)
	}
	// A fresh first page starts with the newcomers, newest first.
	first, err := lc.list(h, ctx, owner.ID, domain.Cursor{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Users) != 2 || first.Users[0].Username != "late1" || first.Users[1].Username != "late0" {
		t.Errorf("first page after the inserts: %v", first.Users)
	}
	// An exact page boundary: the last full page has no next cursor.
	all, err := lc.list(h, ctx, owner.ID, domain.Cursor{}, 27)
	if err != nil || len(all.Users) != 27 || !all.Next.IsZero() {
		t.Errorf("one page of exactly everything: %d users, next %+v, %v", len(all.Users), all.Next, err)
	}
	// The listed accounts carry their profiles and counts.
	if u := all.Users[0]; u.Username == "" || u.CreatedAt.IsZero() {
		t.Errorf("listed user lacks its profile: %+v", u)
	}
	// An unknown owner has an empty list.
	if p, err := lc.list(h, ctx, newID(t), domain.Cursor{}, 10); err != nil || len(p.Users) != 0 {
		t.Errorf("unknown owner: %v, %v", p.Users, err)
	}
}

func testFollowerIDBatches(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	x := h.newAccount(t, "popular")
	var want []string
	for i := range 25 {
		f := h.newAccount(t, fmt.Sprintf("fan%02d", i))
		h.follow(t, f.ID, x.ID, t0.Add(time.Duration(i)*time.Second))
		want = append(want, f.ID)
	}
	slices.Sort(want)
	var (
		got   []string
		sizes []int
		after string
	)
	for {
		batch, err := h.st.FollowerIDs(ctx, x.ID, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		sizes = append(sizes, len(batch))
		got = append(got, batch...)
		after = batch[len(batch)-1]
		if len(sizes) > 10 {
			t.Fatal("batches do not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("follower ids\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("batch sizes %v, want [10 10 5]", sizes)
	}
	if _, err := h.st.FollowerIDs(ctx, x.ID, "junk", 10); !errors.Is(err, domain.ErrCursorInvalid) {
		t.Errorf("malformed position: %v, want ErrCursorInvalid", err)
	}
}

func testFollowedIDs(t *testing.T, h *harness) {
	a := h.newAccount(t, "alice")
	var want []string
	for i := range 3 {
		b := h.newAccount(t, fmt.Sprintf("star%d", i))
		h.follow(t, a.ID, b.ID, t0)
		want = append(want, b.ID)
	}
	slices.Sort(want)
	got, err := h.st.FollowedIDs(ctxFor(t), a.ID)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("FollowedIDs = %v, %v; want %v", got, err, want)
	}
	if got, err := h.st.FollowedIDs(ctxFor(t), newID(t)); err != nil || len(got) != 0 {
		t.Errorf("unknown follower: %v, %v", got, err)
	}
}

// ---------------------------------------------------------------------------------- sessions

func testSessionLifecycle(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a := h.newAccount(t, "alice")

	s, err := h.st.Session(ctx, a.SessionID)
	if err != nil || s.UserID != a.ID || !s.RevokedAt.IsZero() || !s.ExpiresAt.Equal(t0.Add(ttl)) {
		t.Fatalf("session: %+v, %v", s, err)
	}
	if err := s.Check(t0); err != nil {
		t.Fatalf("new session: %v", err)
	}

	_, h2 := domain.NewRefreshToken()
	now := t0.Add(time.Hour)
	s, err = h.st.RotateRefreshToken(ctx, a.TokenHash, h2, now, now.Add(ttl))
	if err != nil || s.ID != a.SessionID || s.UserID != a.ID || !s.ExpiresAt.Equal(now.Add(ttl)) {
		t.Fatalf("first rotation: %+v, %v", s, err)
	}
	if s, _ := h.st.Session(ctx, a.SessionID); !s.ExpiresAt.Equal(now.Add(ttl)) {
		t.Errorf("rotation did not extend the session: expires %v", s.ExpiresAt)
	}
	_, h3 := domain.NewRefreshToken()
	if _, err := h.st.RotateRefreshToken(ctx, h2, h3, now.Add(time.Minute), now.Add(ttl)); err != nil {
		t.Fatalf("second rotation: %v", err)
	}

	// Presenting the first token again: reuse, and the session is revoked.
	_, h4 := domain.NewRefreshToken()
	if _, err := h.st.RotateRefreshToken(ctx, a.TokenHash, h4, now.Add(2*time.Minute), now.Add(ttl)); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("reuse: %v, want ErrRefreshTokenReused", err)
	}
	s, err = h.st.Session(ctx, a.SessionID)
	if err != nil || !s.RevokedAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("after reuse: %+v, %v; want revoked", s, err)
	}
	if err := s.Check(now.Add(3 * time.Minute)); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Errorf("Check of a revoked session: %v", err)
	}
	// The latest token, though unspent, belongs to a revoked session now.
	if _, err := h.st.RotateRefreshToken(ctx, h3, h4, now.Add(3*time.Minute), now.Add(ttl)); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("rotation in a revoked session: %v, want ErrSessionRevoked", err)
	}
	_, unknown := domain.NewRefreshToken()
	if _, err := h.st.RotateRefreshToken(ctx, unknown, h4, now, now.Add(ttl)); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Errorf("unknown token: %v, want ErrRefreshTokenInvalid", err)
	}
	if _, err := h.st.Session(ctx, newID(t)); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	if _, err := h.st.Session(ctx, "junk"); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Errorf("malformed session id: %v", err)
	}
}

func testExpiry(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a := h.newAccount(t, "alice")
	_, next := domain.NewRefreshToken()

	// A token past its expiry cannot rotate, and that alone does not revoke the session.
	sid, hash := h.newSession(t, a.ID, t0, 2*time.Hour, time.Hour)
	if _, err := h.st.RotateRefreshToken(ctx, hash, next, t0.Add(time.Hour), t0.Add(ttl)); !errors.Is(err, domain.ErrRefreshTokenExpired) {
		t.Fatalf("expired token: %v, want ErrRefreshTokenExpired", err)
	}
	if s, _ := h.st.Session(ctx, sid); !s.RevokedAt.IsZero() {
		t.Errorf("an expired token revoked its session")
	}
	// A session past its expiry cannot rotate either.
	_, hash = h.newSession(t, a.ID, t0, time.Hour, 2*time.Hour)
	if _, err := h.st.RotateRefreshToken(ctx, hash, next, t0.Add(90*time.Minute), t0.Add(ttl)); !errors.Is(err, domain.ErrSessionExpired) {
		t.Fatalf("expired session: %v, want ErrSessionExpired", err)
	}
	if err := h.st.CreateSession(ctx, domain.Session{ID: newID(t), UserID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(ttl)},
		domain.RefreshToken{Hash: next, CreatedAt: t0, ExpiresAt: t0.Add(ttl)}); !errors.Is(err, domain.ErrUserNotFound) {
		t.Errorf("session of an unknown user: %v, want ErrUserNotFound", err)
	}
}

func testDoubleSpend(t *testing.T, h *harness) {
	// Many rounds, since a round only proves something when the rotations really overlap.
	const (
		rounds = 20
		n      = 8
	)
	a := h.newAccount(t, "alice")
	now := t0.Add(time.Hour)
	for round := range rounds {
		sid, hash := a.SessionID, a.TokenHash
		if round > 0 {
			sid, hash = h.newSession(t, a.ID, t0, ttl, ttl)
		}
		errs := parallel(n, func(int) error {
			_, next := domain.NewRefreshToken()
			_, err := h.st.RotateRefreshToken(ctxFor(t), hash, next, now, now.Add(ttl))
			return err
		})
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, domain.ErrRefreshTokenReused):
				t.Errorf("loser got %v, want ErrRefreshTokenReused", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d of %d concurrent rotations of one token succeeded, want exactly 1", round, wins, n)
		}
		if got := h.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = $1`, sid); got != 2 {
			t.Errorf("round %d: %d tokens in the session, want the spent one and the winner's", round, got)
		}
		if s, _ := h.st.Session(ctxFor(t), sid); s.RevokedAt.IsZero() {
			t.Errorf("round %d: a double spend did not revoke the session", round)
		}
	}
}

func testRevokeByToken(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a := h.newAccount(t, "alice")
	other, _ := h.newSession(t, a.ID, t0, ttl, ttl)
	if err := h.st.RevokeSessionByToken(ctx, a.TokenHash, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := h.st.RevokeSessionByToken(ctx, a.TokenHash, t0.Add(time.Hour)); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if s, _ := h.st.Session(ctx, a.SessionID); !s.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("revoked at %v, want the first revocation's time", s.RevokedAt)
	}
	if s, _ := h.st.Session(ctx, other); !s.RevokedAt.IsZero() {
		t.Error("revoking one session revoked another")
	}
	_, unknown := domain.NewRefreshToken()
	if err := h.st.RevokeSessionByToken(ctx, unknown, t0); err != nil {
		t.Errorf("revoke by an unknown token: %v, want nil", err)
	}
}

func testPurge(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	a := h.newAccount(t, "alice") // its session lives until t0+ttl
	old1, _ := h.newSession(t, a.ID, t0, time.Hour, time.Hour)
	old2, _ := h.newSession(t, a.ID, t0, time.Hour, time.Hour)
	// A live session with a spent token that expired: the token goes, the session stays.
	live, hash := h.newSession(t, a.ID, t0, 2*time.Hour, time.Hour)
	_, next := domain.NewRefreshToken()
	if _, err := h.st.RotateRefreshToken(ctx, hash, next, t0.Add(30*time.Minute), t0.Add(ttl)); err != nil {
		t.Fatal(err)
	}

	n, err := h.st.PurgeExpired(ctx, t0.Add(2*time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Errorf("purged %d rows, want at least the two sessions and the spent token", n)
	}
	for _, id := range []string{old1, old2} {
		if _, err := h.st.Session(ctx, id); !errors.Is(err, domain.ErrSessionNotFound) {
			t.Errorf("expired session %s: %v, want purged", id, err)
		}
	}
	for _, id := range []string{a.SessionID, live} {
		if _, err := h.st.Session(ctx, id); err != nil {
			t.Errorf("live session %s: %v", id, err)
		}
	}
	if got := h.count(t, `SELECT count(*) FROM refresh_tokens WHERE session_id = $1`, live); got != 1 {
		t.Errorf("live session keeps %d tokens, want only the unexpired one", got)
	}
	if got := h.count(t, `SELECT count(*) FROM refresh_tokens`); got != 2 {
		t.Errorf("%d tokens left, want 2", got)
	}
}
