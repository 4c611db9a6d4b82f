package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/platform/web"
	"github.com/piazza-social/piazza/services/gateway"
	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
	"github.com/piazza-social/piazza/services/gateway/stream"
	"github.com/piazza-social/piazza/services/gateway/tickets"
)

// The in-process fakes of the gateway's dependencies, and the harness that serves the gateway
// over them. user-service is faked behind a real gRPC server on loopback, so its errors cross
// the wire exactly as the real one's do.

// accessTTL is the lifetime of the fake's access tokens.
const accessTTL = 15 * time.Minute

// fakeClock is a settable clock shared by the gateway, the fakes and the limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fakeSession struct {
	userID  string
	revoked bool
}

type follow struct{ follower, followee string }

// fakeUsers is an in-memory user-service: accounts with plaintext passwords, sessions with
// rotating refresh tokens and reuse detection, and the follow graph. It also issues the access
// tokens that fakeTokens verifies.
type fakeUsers struct {
	userv1.UnimplementedUserServiceServer
	clock *fakeClock

	mu        sync.Mutex
	seq       int
	users     map[string]*userv1.User // by id
	passwords map[string]string       // by id
	byName    map[string]string       // lower-cased username → id
	byEmail   map[string]string       // lower-cased email → id
	sessions  map[string]*fakeSession
	refresh   map[string]string // unspent refresh token → session id
	spent     map[string]string // spent refresh token → session id
	access    map[string]auth.Claims
	follows   []follow // oldest first
	jwks      []byte
	fail      map[string]error // method → the error it returns
	calls     map[string]int   // method → calls
}

func newFakeUsers(clock *fakeClock) *fakeUsers {
	return &fakeUsers{
		clock:     clock,
		users:     map[string]*userv1.User{},
		passwords: map[string]string{},
		byName:    map[string]string{},
		byEmail:   map[string]string{},
		sessions:  map[string]*fakeSession{},
		refresh:   map[string]string{},
		spent:     map[string]string{},
		access:    map[string]auth.Claims{},
		jwks:      []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
		fail:      map[string]error{},
		calls:     map[string]int{},
	}
}

// enter counts a call and returns the error the test asked this method to fail with.
func (f *fakeUsers) enter(method string) error {
	f.calls[method]++
	return f.fail[method]
}

func (f *fakeUsers) setFail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

func (f *fakeUsers) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeUsers) next(prefix string) string {
	f.seq++
	return prefix + strconv.Itoa(f.seq)
}

func (f *fakeUsers) SignUp(_ context.Context, r *userv1.SignUpRequest) (*userv1.AuthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("SignUp"); err != nil {
		return nil, err
	}
	name, email := strings.ToLower(r.GetUsername()), strings.ToLower(r.GetEmail())
	if _, ok := f.byName[name]; ok {
		return nil, errs.New(errs.Conflict, "The username is taken.")
	}
	if _, ok := f.byEmail[email]; ok {
		return nil, errs.New(errs.Conflict, "The email address is taken.")
	}
	id := f.next("u")
	f.users[id] = &userv1.User{Id: id, Username: name, DisplayName: r.GetUsername(), Email: email, CreatedAt: timestamppb.New(f.clock.Now())}
	f.passwords[id] = r.GetPassword()
	f.byName[name], f.byEmail[email] = id, id
	return f.startSession(id, ""), nil
}

// startSession issues a token pair, in a new session unless sid names one.
func (f *fakeUsers) startSession(userID, sid string) *userv1.AuthResponse {
	if sid == "" {
		sid = f.next("s")
		f.sessions[sid] = &fakeSession{userID: userID}
	}
	at, rt := f.next("at-"), f.next("rt-")
	now := f.clock.Now()
	f.access[at] = auth.Claims{UserID: userID, SessionID: sid, IssuedAt: now, ExpiresAt: now.Add(accessTTL)}
	f.refresh[rt] = sid
	return &userv1.AuthResponse{
		User:                  f.view(userID, userID),
		AccessToken:           at,
		RefreshToken:          rt,
		AccessTokenExpiresAt:  timestamppb.New(now.Add(accessTTL)),
		RefreshTokenExpiresAt: timestamppb.New(now.Add(30 * 24 * time.Hour)),
	}
}

// view is user id as callerID sees it: with counts, and with the email for the user themself.
func (f *fakeUsers) view(id, callerID string) *userv1.User {
	u := f.users[id]
	v := &userv1.User{Id: u.Id, Username: u.Username, DisplayName: u.DisplayName, Bio: u.Bio, CreatedAt: u.CreatedAt}
	for _, e := range f.follows {
		if e.followee == id {
			v.FollowersCount++
		}
		if e.follower == id {
			v.FollowingCount++
		}
	}
	if callerID == id {
		v.Email = u.Email
	}
	return v
}

func (f *fakeUsers) Login(_ context.Context, r *userv1.LoginRequest) (*userv1.AuthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Login"); err != nil {
		return nil, err
	}
	login := strings.ToLower(r.GetLogin())
	id, ok := f.byName[login]
	if !ok {
		id, ok = f.byEmail[login]
	}
	if !ok || f.passwords[id] != r.GetPassword() {
		return nil, errs.New(errs.Unauthenticated, "Wrong login or password.")
	}
	return f.startSession(id, ""), nil
}

func (f *fakeUsers) Refresh(_ context.Context, r *userv1.RefreshRequest) (*userv1.AuthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Refresh"); err != nil {
		return nil, err
	}
	if sid, ok := f.spent[r.GetRefreshToken()]; ok {
		f.sessions[sid].revoked = true // reuse: the token was stolen, or its owner's
		return nil, errs.New(errs.TokenInvalid, "The refresh token was already used; the session has ended.")
	}
	sid, ok := f.refresh[r.GetRefreshToken()]
	if !ok || f.sessions[sid].revoked {
		return nil, errs.New(errs.Unauthenticated, "Unknown refresh token.")
	}
	delete(f.refresh, r.GetRefreshToken())
	f.spent[r.GetRefreshToken()] = sid
	return f.startSession(f.sessions[sid].userID, sid), nil
}

func (f *fakeUsers) Logout(_ context.Context, r *userv1.LogoutRequest) (*userv1.LogoutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Logout"); err != nil {
		return nil, err
	}
	sid, ok := f.refresh[r.GetRefreshToken()]
	if !ok {
		sid, ok = f.spent[r.GetRefreshToken()]
	}
	if ok {
		f.sessions[sid].revoked = true
	}
	return &userv1.LogoutResponse{}, nil
}

func (f *fakeUsers) CheckSession(_ context.Context, r *userv1.CheckSessionRequest) (*userv1.CheckSessionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CheckSession"); err != nil {
		return nil, err
	}
	if err := f.checkSession(r); err != nil {
		return nil, err
	}
	return &userv1.CheckSessionResponse{}, nil
}

// checkSession is CheckSession's answer about r, for it and for the lookups that carry a
// check_session (counted as "check_session", failing with what CheckSession is set to fail
// with).
func (f *fakeUsers) checkSession(r *userv1.CheckSessionRequest) error {
	s, ok := f.sessions[r.GetSessionId()]
	if !ok || s.revoked || s.userID != r.GetUserId() {
		return errs.New(errs.TokenInvalid, "The session has ended.")
	}
	return nil
}

// carriedCheck checks a lookup's check_session, if it has one.
func (f *fakeUsers) carriedCheck(r *userv1.CheckSessionRequest) error {
	if r == nil {
		return nil
	}
	f.calls["check_session"]++
	if err := f.fail["CheckSession"]; err != nil {
		return err
	}
	return f.checkSession(r)
}

func (f *fakeUsers) GetSigningKeys(context.Context, *userv1.GetSigningKeysRequest) (*userv1.GetSigningKeysResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetSigningKeys"); err != nil {
		return nil, err
	}
	return &userv1.GetSigningKeysResponse{Jwks: f.jwks}, nil
}

func (f *fakeUsers) GetUser(_ context.Context, r *userv1.GetUserRequest) (*userv1.GetUserResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetUser"); err != nil {
		return nil, err
	}
	if err := f.carriedCheck(r.GetCheckSession()); err != nil {
		return nil, err
	}
	id := r.GetId()
	if id == "" {
		id = f.byName[strings.ToLower(r.GetUsername())]
	}
	if _, ok := f.users[id]; !ok {
		return nil, errs.New(errs.NotFound, "No such user.")
	}
	return &userv1.GetUserResponse{User: f.view(id, r.GetCallerId())}, nil
}

func (f *fakeUsers) GetUsers(_ context.Context, r *userv1.GetUsersRequest) (*userv1.GetUsersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetUsers"); err != nil {
		return nil, err
	}
	if err := f.carriedCheck(r.GetCheckSession()); err != nil {
		return nil, err
	}
	resp := &userv1.GetUsersResponse{}
	for _, id := range r.GetIds() {
		if _, ok := f.users[id]; ok {
			resp.Users = append(resp.Users, f.view(id, ""))
		}
	}
	return resp, nil
}

func (f *fakeUsers) UpdateProfile(_ context.Context, r *userv1.UpdateProfileRequest) (*userv1.UpdateProfileResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateProfile"); err != nil {
		return nil, err
	}
	u, ok := f.users[r.GetCallerId()]
	if !ok {
		return nil, errs.New(errs.NotFound, "No such user.")
	}
	if r.DisplayName != nil {
		u.DisplayName = r.GetDisplayName()
	}
	if r.Bio != nil {
		u.Bio = r.GetBio()
	}
	return &userv1.UpdateProfileResponse{User: f.view(u.Id, u.Id)}, nil
}

func (f *fakeUsers) Follow(_ context.Context, r *userv1.FollowRequest) (*userv1.FollowResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Follow"); err != nil {
		return nil, err
	}
	id, ok := f.byName[strings.ToLower(r.GetUsername())]
	switch {
	case !ok:
		return nil, errs.New(errs.NotFound, "No such user.")
	case id == r.GetCallerId():
		return nil, errs.Validation("You cannot follow yourself.")
	}
	e := follow{follower: r.GetCallerId(), followee: id}
	if !slices.Contains(f.follows, e) {
		f.follows = append(f.follows, e)
	}
	return &userv1.FollowResponse{}, nil
}

func (f *fakeUsers) Unfollow(_ context.Context, r *userv1.UnfollowRequest) (*userv1.UnfollowResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Unfollow"); err != nil {
		return nil, err
	}
	id, ok := f.byName[strings.ToLower(r.GetUsername())]
	if !ok {
		return nil, errs.New(errs.NotFound, "No such user.")
	}
	f.follows = slices.DeleteFunc(f.follows, func(e follow) bool { return e == follow{r.GetCallerId(), id} })
	return &userv1.UnfollowResponse{}, nil
}

func (f *fakeUsers) ListFollowers(_ context.Context, r *userv1.ListFollowsRequest) (*userv1.ListFollowsResponse, error) {
	return f.list("ListFollowers", r, func(e follow) (string, string) { return e.followee, e.follower })
}

func (f *fakeUsers) ListFollowing(_ context.Context, r *userv1.ListFollowsRequest) (*userv1.ListFollowsResponse, error) {
	return f.list("ListFollowing", r, func(e follow) (string, string) { return e.follower, e.followee })
}

// list pages through the edges of a user, newest first; the cursor is the offset, base64url.
func (f *fakeUsers) list(method string, r *userv1.ListFollowsRequest, ends func(follow) (from, to string)) (*userv1.ListFollowsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(method); err != nil {
		return nil, err
	}
	id, ok := f.byName[strings.ToLower(r.GetUsername())]
	if !ok {
		return nil, errs.New(errs.NotFound, "No such user.")
	}
	offset := 0
	if c := r.GetCursor(); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return nil, errs.Validation("Bad cursor.", errs.Field("/cursor", "is not a cursor returned by this API"))
		}
		offset, _ = strconv.Atoi(string(b))
	}
	var ids []string
	for i := len(f.follows) - 1; i >= 0; i-- {
		if from, to := ends(f.follows[i]); from == id {
			ids = append(ids, to)
		}
	}
	resp := &userv1.ListFollowsResponse{}
	end := min(offset+int(r.GetLimit()), len(ids))
	for _, uid := range ids[min(offset, end):end] {
		resp.Items = append(resp.Items, f.view(uid, ""))
	}
	if end < len(ids) {
		resp.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return resp, nil
}

// fakeTokens verifies the access tokens fakeUsers issued; some token values stand for the
// verifier's other answers.
type fakeTokens struct{ users *fakeUsers }

const (
	tokenExpired     = "expired.token"
	tokenTampered    = "tampered.token"
	tokenPlainError  = "verifier.bug"
	tokenUnavailable = "keys.unavailable"
	tokenNoSession   = "no.session"
)

func (v fakeTokens) Verify(_ context.Context, token string) (auth.Claims, error) {
	switch token {
	case tokenExpired:
		return auth.Claims{}, errs.New(errs.TokenExpired, "The access token has expired.")
	case tokenTampered:
		return auth.Claims{}, errs.New(errs.TokenInvalid, "The access token's signature is wrong.")
	case tokenPlainError:
		return auth.Claims{}, errors.New("verifier: unexpected failure")
	case tokenUnavailable:
		return auth.Claims{}, errs.New(errs.Unavailable, "The key set could not be fetched.")
	case tokenNoSession:
		return auth.Claims{UserID: "u1"}, nil
	}
	v.users.mu.Lock()
	defer v.users.mu.Unlock()
	c, ok := v.users.access[token]
	if !ok {
		return auth.Claims{}, errs.New(errs.TokenInvalid, "Unknown access token.")
	}
	return c, nil
}

// limiterFunc adapts a function to gateway.RateLimiter.
type limiterFunc func(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Result, error)

func (f limiterFunc) Allow(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Result, error) {
	return f(ctx, key, l)
}

// allowAll is a limiter that never refuses.
var allowAll = limiterFunc(func(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{Allowed: true}, nil
})

// recordingLimiter is the real in-memory limiter on the fake clock; it remembers the keys it
// was asked about and can be made to fail.
type recordingLimiter struct {
	limiter ratelimit.Limiter

	mu   sync.Mutex
	seen map[string]bool
	err  error
}

func newRecordingLimiter(t testing.TB, clock *fakeClock) *recordingLimiter {
	t.Helper()
	m, err := ratelimit.NewMemory(ratelimit.MemoryConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &recordingLimiter{limiter: m, seen: map[string]bool{}}
}

func (l *recordingLimiter) Allow(ctx context.Context, key string, lim ratelimit.Limit) (ratelimit.Result, error) {
	l.mu.Lock()
	l.seen[key] = true
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return ratelimit.Result{}, err
	}
	return l.limiter.Allow(ctx, key, lim)
}

func (l *recordingLimiter) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

func (l *recordingLimiter) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := slices.Collect(maps.Keys(l.seen))
	slices.Sort(ks)
	return ks
}

// harness is a gateway over the fakes, its handler wrapped by the OpenAPI contract check.
type harness struct {
	t        testing.TB
	clock    *fakeClock
	users    *fakeUsers
	limiter  *recordingLimiter
	gw       *gateway.Service
	contract *gatewaytest.Contract
	handler  http.Handler
	logs     *syncBuffer

	// The real-time side's fakes (fakes_realtime_test.go).
	posts         *fakePosts
	inbox         *fakeInbox
	presenceSvc   *fakePresenceService
	presenceStore *fakePresenceStore
	push          *fakePush
	events        *fakeEvents
	tickets       *tickets.Memory
	metrics       *sdkmetric.ManualReader
	baseURL       string // set by start

	// messaging-service's fake (fakes_messaging_test.go).
	messaging *fakeMessaging
}

// newHarness starts fakeUsers behind a gRPC server on loopback and builds a gateway on it;
// edit adjusts the gateway's config first.
func newHarness(t testing.TB, edit ...func(*gateway.Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), logs: &syncBuffer{}}
	h.users = newFakeUsers(h.clock)
	h.limiter = newRecordingLimiter(t, h.clock)
	h.contract = gatewaytest.LoadContract(t)
	h.posts = newFakePosts(h.clock)
	h.inbox = newFakeInbox(h.clock)
	h.presenceSvc = &fakePresenceService{}
	h.presenceStore = newFakePresenceStore()
	h.push = newFakePush()
	h.events = &fakeEvents{}
	h.tickets = tickets.NewMemory(tickets.MemoryConfig{Now: h.clock.Now})
	h.metrics = sdkmetric.NewManualReader()
	h.messaging = newFakeMessaging(h.clock)

	srv := rpc.NewServer(rpc.ServerConfig{Addr: "127.0.0.1:0"}, nil)
	userv1.RegisterUserServiceServer(srv, h.users)
	postv1.RegisterPostServiceServer(srv, h.posts)
	notificationv1.RegisterNotificationServiceServer(srv, h.inbox)
	presencev1.RegisterPresenceServiceServer(srv, h.presenceSvc)
	messagingv1.RegisterMessagingServiceServer(srv, h.messaging)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("fake user-service: %v", err)
	}
	conn, err := rpc.Dial(rpc.ClientConfig{Target: srv.Addr().String()}, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fake user-service: %v", err)
		}
	})

	// A real SDK tracer provider, so problems carry valid trace and span ids as in production.
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.metrics))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg := gateway.Config{
		Addr:           "127.0.0.1:0",
		Users:          userv1.NewUserServiceClient(conn),
		Tokens:         fakeTokens{users: h.users},
		Limiter:        h.limiter,
		Now:            h.clock.Now,
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.TraceContext{},

		Posts:         postv1.NewPostServiceClient(conn),
		Notifications: notificationv1.NewNotificationServiceClient(conn),
		Presence:      presencev1.NewPresenceServiceClient(conn),
		Messaging:     messagingv1.NewMessagingServiceClient(conn),
		PresenceStore: h.presenceStore,
		Push:          h.push,
		InstanceID:    "gw-test",
		Events:        h.events,
		Tickets:       h.tickets,
		SSE: stream.Tuning{
			// The sweep runs often on the real clock; what it compares is the fake clock's
			// time, which the tests advance.
			Sweep:        5 * time.Millisecond,
			EventBackoff: time.Millisecond,
		},
	}
	for _, e := range edit {
		e(&cfg)
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h.gw = gateway.New(cfg, log)
	h.handler = h.contract.Handler(t, h.gw.Handler())
	return h
}

// req describes one request to the gateway.
type req struct {
	method, path string
	body         string // sent as application/json when not empty
	token        string // sent as a bearer token when not empty
	header       http.Header
	remoteAddr   string
}

func (h *harness) do(r req) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.serve(h.newRequest(r))
}

func (h *harness) serve(hr *http.Request) *httptest.ResponseRecorder {
	h.t.Helper()
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, hr)
	return w
}

func (h *harness) newRequest(r req) *http.Request {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header[k] = v
	}
	if r.remoteAddr != "" {
		hr.RemoteAddr = r.remoteAddr
	}
	return hr
}

// tokens is the body of a sign-up, login or refresh answer.
type tokens struct {
	User struct {
		ID             string `json:"id"`
		Username       string `json:"username"`
		DisplayName    string `json:"display_name"`
		Email          string `json:"email"`
		FollowersCount int64  `json:"followers_count"`
		CreatedAt      string `json:"created_at"`
	} `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

// signup creates an account and returns its tokens.
func (h *harness) signup(username string) tokens {
	h.t.Helper()
	w := h.do(req{method: "POST", path: "/v1/auth/signup",
		body:       `{"username":"` + username + `","email":"` + strings.ToLower(username) + `@example.com","password":"correct horse battery"}`,
		remoteAddr: "198.51.100.1:1000"})
	if w.Code != http.StatusCreated {
		h.t.Fatalf("signup %s: %d %s", username, w.Code, w.Body)
	}
	return decodeJSON[tokens](h.t, w)
}

func decodeJSON[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q, want application/json; body %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

// fullProblem is a problem body with its field violations.
type fullProblem struct {
	Status int                   `json:"status"`
	Code   string                `json:"code"`
	Detail string                `json:"detail"`
	Errors []errs.FieldViolation `json:"errors"`
}

// wantProblem fails t unless w is a problem with the given status and code.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, code errs.Code) fullProblem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("content type %q, want %s; status %d body %s", ct, web.ProblemContentType, w.Code, w.Body)
	}
	var p fullProblem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if w.Code != status || p.Status != status || p.Code != string(code) {
		t.Fatalf("got %d %s, want %d %s; body %s", w.Code, p.Code, status, code, w.Body)
	}
	return p
}

func pointers(p fullProblem) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Pointer)
	}
	return out
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
