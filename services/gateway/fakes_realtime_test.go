package gateway_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/piazza-social/piazza/api/realtimev1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
)

// The in-process fakes of the real-time side: post-, notification- and presence-service behind
// the harness's loopback gRPC server, the presence store, the push channel and the event bus;
// and the helpers that run the gateway for real and read its event streams.

// offsetCursor pages by offset, base64url: what the fakes use as opaque cursors.
func offsetCursor(c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, errs.Validation("Bad cursor.", errs.Field("/cursor", "is not a cursor returned by this API"))
	}
	return strconv.Atoi(string(b))
}

func nextCursor(end, total int) string {
	if end >= total {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
}

func page[T any](items []T, cursor string, limit int32) ([]T, string, error) {
	off, err := offsetCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 20
	}
	end := min(off+int(limit), len(items))
	return items[min(off, end):end], nextCursor(end, len(items)), nil
}

// fakePosts is an in-memory post-service. Its home timeline is every post not by the caller,
// newest first: the gateway's part is the mapping, not the feed.
type fakePosts struct {
	postv1.UnimplementedPostServiceServer
	clock *fakeClock

	mu       sync.Mutex
	seq      int
	posts    []*postv1.Post // oldest first
	likes    map[string]map[string]bool
	comments map[string][]*postv1.Comment
	calls    map[string]int
}

func newFakePosts(clock *fakeClock) *fakePosts {
	return &fakePosts{clock: clock, likes: map[string]map[string]bool{}, comments: map[string][]*postv1.Comment{}, calls: map[string]int{}}
}

func (f *fakePosts) callCount(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

func (f *fakePosts) find(id string) (*postv1.Post, error) {
	for _, p := range f.posts {
		if p.Id == id {
			return p, nil
		}
	}
	return nil, errs.New(errs.NotFound, "No such post.")
}

// view is post p as caller sees it.
func (f *fakePosts) view(p *postv1.Post, caller string) *postv1.Post {
	return &postv1.Post{
		Id: p.Id, AuthorId: p.AuthorId, Text: p.Text, CreatedAt: p.CreatedAt,
		LikeCount: int64(len(f.likes[p.Id])), CommentCount: int64(len(f.comments[p.Id])), LikedByMe: f.likes[p.Id][caller],
	}
}

func (f *fakePosts) CreatePost(_ context.Context, r *postv1.CreatePostRequest) (*postv1.CreatePostResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CreatePost"]++
	f.seq++
	p := &postv1.Post{Id: "p" + strconv.Itoa(f.seq), AuthorId: r.GetCallerId(), Text: strings.TrimSpace(r.GetText()), CreatedAt: timestamppb.New(f.clock.Now())}
	f.posts = append(f.posts, p)
	return &postv1.CreatePostResponse{Post: f.view(p, r.GetCallerId())}, nil
}

func (f *fakePosts) GetPost(_ context.Context, r *postv1.GetPostRequest) (*postv1.GetPostResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["GetPost"]++
	p, err := f.find(r.GetId())
	if err != nil {
		return nil, err
	}
	return &postv1.GetPostResponse{Post: f.view(p, r.GetCallerId())}, nil
}

func (f *fakePosts) DeletePost(_ context.Context, r *postv1.DeletePostRequest) (*postv1.DeletePostResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DeletePost"]++
	p, err := f.find(r.GetId())
	if err != nil {
		return nil, err
	}
	if p.AuthorId != r.GetCallerId() {
		return nil, errs.New(errs.Forbidden, "Only the author may delete a post.")
	}
	f.posts = slices.DeleteFunc(f.posts, func(q *postv1.Post) bool { return q == p })
	return &postv1.DeletePostResponse{}, nil
}

func (f *fakePosts) LikePost(_ context.Context, r *postv1.LikePostRequest) (*postv1.LikePostResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["LikePost"]++
	if _, err := f.find(r.GetId()); err != nil {
		return nil, err
	}
	if f.likes[r.GetId()] == nil {
		f.likes[r.GetId()] = map[string]bool{}
	}
	f.likes[r.GetId()][r.GetCallerId()] = true
	return &postv1.LikePostResponse{}, nil
}

func (f *fakePosts) UnlikePost(_ context.Context, r *postv1.UnlikePostRequest) (*postv1.UnlikePostResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UnlikePost"]++
	if _, err := f.find(r.GetId()); err != nil {
		return nil, err
	}
	delete(f.likes[r.GetId()], r.GetCallerId())
	return &postv1.UnlikePostResponse{}, nil
}

func (f *fakePosts) AddComment(_ context.Context, r *postv1.AddCommentRequest) (*postv1.AddCommentResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["AddComment"]++
	if _, err := f.find(r.GetPostId()); err != nil {
		return nil, err
	}
	f.seq++
	c := &postv1.Comment{Id: "c" + strconv.Itoa(f.seq), PostId: r.GetPostId(), AuthorId: r.GetCallerId(), Text: strings.TrimSpace(r.GetText()), CreatedAt: timestamppb.New(f.clock.Now())}
	f.comments[r.GetPostId()] = append(f.comments[r.GetPostId()], c)
	return &postv1.AddCommentResponse{Comment: c}, nil
}

func (f *fakePosts) ListComments(_ context.Context, r *postv1.ListCommentsRequest) (*postv1.ListCommentsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListComments"]++
	if _, err := f.find(r.GetPostId()); err != nil {
		return nil, err
	}
	items, next, err := page(f.comments[r.GetPostId()], r.GetCursor(), r.GetLimit())
	if err != nil {
		return nil, err
	}
	return &postv1.ListCommentsResponse{Items: items, NextCursor: next}, nil
}

func (f *fakePosts) list(caller string, keep func(*postv1.Post) bool, cursor string, limit int32) (*postv1.ListPostsResponse, error) {
	var all []*postv1.Post
	for i := len(f.posts) - 1; i >= 0; i-- {
		if keep(f.posts[i]) {
			all = append(all, f.view(f.posts[i], caller))
		}
	}
	items, next, err := page(all, cursor, limit)
	if err != nil {
		return nil, err
	}
	return &postv1.ListPostsResponse{Items: items, NextCursor: next}, nil
}

func (f *fakePosts) ListUserPosts(_ context.Context, r *postv1.ListUserPostsRequest) (*postv1.ListPostsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListUserPosts"]++
	return f.list(r.GetCallerId(), func(p *postv1.Post) bool { return p.AuthorId == r.GetAuthorId() }, r.GetCursor(), r.GetLimit())
}

func (f *fakePosts) HomeTimeline(_ context.Context, r *postv1.HomeTimelineRequest) (*postv1.ListPostsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["HomeTimeline"]++
	return f.list(r.GetCallerId(), func(p *postv1.Post) bool { return p.AuthorId != r.GetCallerId() }, r.GetCursor(), r.GetLimit())
}

// fakeInbox is an in-memory notification-service: each user's notifications have sequence
// numbers 1, 2, 3, ...
type fakeInbox struct {
	notificationv1.UnimplementedNotificationServiceServer
	clock *fakeClock

	mu    sync.Mutex
	items map[string][]*notificationv1.Notification
	read  map[string]int64
	calls map[string]int
	fail  map[string]error
	// pageCap, when set, caps what one ListSince answers (with has_more), as a service may.
	pageCap int
	// listSinceHook, when set, runs after ListSince took its snapshot and before it answers.
	listSinceHook func(*notificationv1.ListSinceRequest)
}

func newFakeInbox(clock *fakeClock) *fakeInbox {
	return &fakeInbox{clock: clock, items: map[string][]*notificationv1.Notification{}, read: map[string]int64{}, calls: map[string]int{}, fail: map[string]error{}}
}

// add stores n notifications for user and returns them, as clients should see them.
func (f *fakeInbox) add(user string, n int) []realtimev1.Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []realtimev1.Notification
	for range n {
		seq := int64(len(f.items[user]) + 1)
		p := &notificationv1.Notification{
			Seq: seq, Id: "ev-" + user + "-" + strconv.FormatInt(seq, 10), Type: "post.liked",
			CreatedAt: timestamppb.New(f.clock.Now()), Data: []byte(`{"n":` + strconv.FormatInt(seq, 10) + `}`),
		}
		f.items[user] = append(f.items[user], p)
		out = append(out, realtimev1.Notification{Seq: p.Seq, ID: p.Id, Type: p.Type, CreatedAt: p.CreatedAt.AsTime(), Data: p.Data})
	}
	return out
}

func (f *fakeInbox) callCount(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

func (f *fakeInbox) setHook(h func(*notificationv1.ListSinceRequest)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listSinceHook = h
}

func (f *fakeInbox) ListNotifications(_ context.Context, r *notificationv1.ListNotificationsRequest) (*notificationv1.ListNotificationsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListNotifications"]++
	all := slices.Clone(f.items[r.GetUserId()])
	slices.Reverse(all)
	items, next, err := page(all, r.GetCursor(), r.GetLimit())
	if err != nil {
		return nil, err
	}
	return &notificationv1.ListNotificationsResponse{Items: items, NextCursor: next}, nil
}

func (f *fakeInbox) ListSince(_ context.Context, r *notificationv1.ListSinceRequest) (*notificationv1.ListSinceResponse, error) {
	f.mu.Lock()
	f.calls["ListSince"]++
	if err := f.fail["ListSince"]; err != nil {
		f.mu.Unlock()
		return nil, err
	}
	limit := int(r.GetLimit())
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	if f.pageCap > 0 {
		limit = min(limit, f.pageCap)
	}
	all := f.items[r.GetUserId()]
	from := min(int(max(r.GetAfterSeq(), 0)), len(all))
	end := min(from+limit, len(all))
	resp := &notificationv1.ListSinceResponse{Items: slices.Clone(all[from:end]), HasMore: end < len(all)}
	hook := f.listSinceHook
	f.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	return resp, nil
}

func (f *fakeInbox) UnreadCount(_ context.Context, r *notificationv1.UnreadCountRequest) (*notificationv1.UnreadCountResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UnreadCount"]++
	if err := f.fail["UnreadCount"]; err != nil {
		return nil, err
	}
	last := int64(len(f.items[r.GetUserId()]))
	return &notificationv1.UnreadCountResponse{Count: last - f.read[r.GetUserId()], LastSeq: last}, nil
}

func (f *fakeInbox) MarkRead(_ context.Context, r *notificationv1.MarkReadRequest) (*notificationv1.MarkReadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["MarkRead"]++
	f.read[r.GetUserId()] = max(f.read[r.GetUserId()], min(r.GetUpToSeq(), int64(len(f.items[r.GetUserId()]))))
	for _, n := range f.items[r.GetUserId()] {
		n.Read = n.Seq <= f.read[r.GetUserId()]
	}
	return &notificationv1.MarkReadResponse{}, nil
}

// fakePresenceService answers what the test set.
type fakePresenceService struct {
	presencev1.UnimplementedPresenceServiceServer

	mu       sync.Mutex
	presence map[string]*presencev1.GetPresenceResponse
	sessions map[string][]*presencev1.Session
}

func (f *fakePresenceService) set(user string, p *presencev1.GetPresenceResponse, sessions ...*presencev1.Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.presence == nil {
		f.presence, f.sessions = map[string]*presencev1.GetPresenceResponse{}, map[string][]*presencev1.Session{}
	}
	f.presence[user], f.sessions[user] = p, sessions
}

func (f *fakePresenceService) GetPresence(_ context.Context, r *presencev1.GetPresenceRequest) (*presencev1.GetPresenceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.presence[r.GetUserId()]; ok {
		return p, nil
	}
	return &presencev1.GetPresenceResponse{}, nil
}

func (f *fakePresenceService) ListSessions(_ context.Context, r *presencev1.ListSessionsRequest) (*presencev1.ListSessionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	items, next, err := page(f.sessions[r.GetUserId()], r.GetCursor(), r.GetLimit())
	if err != nil {
		return nil, err
	}
	return &presencev1.ListSessionsResponse{Items: items, NextCursor: next}, nil
}

// fakePresenceStore is a presence.Store that remembers what it was told.
type fakePresenceStore struct {
	mu         sync.Mutex
	live       map[presence.Connection]time.Duration // connection → TTL
	registered []presence.Connection
	gone       []presence.Connection
	refreshes  map[presence.Connection]int
	refreshErr error
}

var _ presence.Store = (*fakePresenceStore)(nil)

func newFakePresenceStore() *fakePresenceStore {
	return &fakePresenceStore{live: map[presence.Connection]time.Duration{}, refreshes: map[presence.Connection]int{}}
}

func (f *fakePresenceStore) online(user string) bool {
	for c := range f.live {
		if c.UserID == user {
			return true
		}
	}
	return false
}

func (f *fakePresenceStore) Register(_ context.Context, c presence.Connection, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := !f.online(c.UserID)
	f.live[c] = ttl
	f.registered = append(f.registered, c)
	return first, nil
}

func (f *fakePresenceStore) Refresh(_ context.Context, c presence.Connection, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshErr != nil {
		return f.refreshErr
	}
	f.live[c] = ttl
	f.refreshes[c]++
	return nil
}

func (f *fakePresenceStore) Unregister(_ context.Context, c presence.Connection) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, c)
	f.gone = append(f.gone, c)
	return !f.online(c.UserID), nil
}

func (f *fakePresenceStore) Routes(_ context.Context, users []string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for c := range f.live {
		if slices.Contains(users, c.UserID) && !slices.Contains(out[c.UserID], c.InstanceID) {
			out[c.UserID] = append(out[c.UserID], c.InstanceID)
		}
	}
	return out, nil
}

func (f *fakePresenceStore) Online(_ context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online(user), nil
}

// connections returns the connections of user registered so far, and those removed.
func (f *fakePresenceStore) connections(user string) (registered, gone []presence.Connection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.registered {
		if c.UserID == user {
			registered = append(registered, c)
		}
	}
	for _, c := range f.gone {
		if c.UserID == user {
			gone = append(gone, c)
		}
	}
	return registered, gone
}

func (f *fakePresenceStore) refreshCount(c presence.Connection) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes[c]
}

// fakePush is the push port in process. Its channel is unbuffered: when send returns, the
// hub's reader has taken the message, and when the next send returns, it has handed the
// previous one's deliveries to the connections' queues.
type fakePush struct {
	mu       sync.Mutex
	instance string
	ch       chan []byte
	ctx      context.Context
}

func newFakePush() *fakePush { return &fakePush{ch: make(chan []byte)} }

func (f *fakePush) Subscribe(ctx context.Context, instanceID string) (<-chan []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx != nil {
		return nil, errors.New("fake push: one subscription only")
	}
	f.instance, f.ctx = instanceID, ctx
	return f.ch, nil
}

// send hands msg to the subscriber.
func (f *fakePush) send(t testing.TB, msg []byte) {
	t.Helper()
	f.mu.Lock()
	ctx := f.ctx
	f.mu.Unlock()
	if ctx == nil {
		t.Fatal("fake push: nobody subscribed")
	}
	select {
	case f.ch <- msg:
	case <-ctx.Done():
		t.Fatal("fake push: the subscription ended")
	case <-time.After(awaitTimeout):
		t.Fatal("fake push: the hub's reader did not take a message: it is blocked")
	}
}

// deliver sends a batch of notifications, all for user.
func (f *fakePush) deliver(t testing.TB, user string, ns ...realtimev1.Notification) {
	t.Helper()
	b := realtimev1.Batch{OccurredAt: time.Now().Add(-time.Millisecond)}
	for _, n := range ns {
		b.Deliveries = append(b.Deliveries, realtimev1.Delivery{UserID: user, Notification: n})
	}
	msg, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	f.send(t, msg)
}

// settle returns once every message sent before has been handed to the connections.
func (f *fakePush) settle(t testing.TB) {
	t.Helper()
	f.send(t, []byte(`{"deliveries":[]}`))
}

// fakeEvents is the event bus's publisher; it fails while failing is set.
type fakeEvents struct {
	mu        sync.Mutex
	published []events.Envelope
	topics    []string
	failing   error
}

func (f *fakeEvents) Publish(_ context.Context, topic string, envs ...events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return f.failing
	}
	for _, e := range envs {
		f.published = append(f.published, e)
		f.topics = append(f.topics, topic)
	}
	return nil
}

func (f *fakeEvents) setFailing(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = err
}

// of returns the published events of a type, with their topics.
func (f *fakeEvents) of(eventType string) (envs []events.Envelope, topics []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.published {
		if e.Type == eventType {
			envs = append(envs, e)
			topics = append(topics, f.topics[i])
		}
	}
	return envs, topics
}

// awaitTimeout bounds every wait of these tests. It is a safety net that turns a hang into a
// failure, never a statement about speed.
const awaitTimeout = 20 * time.Second

// await polls cond until it holds, failing t after awaitTimeout.
func await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// start runs the gateway (server and stream hub) until the test ends, and checks that it
// stops cleanly then. stop stops it earlier and returns what Run returned.
func (h *harness) start() (stop func() error) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.gw.Run(ctx) }()
	select {
	case <-h.gw.Ready():
	case err := <-errc:
		cancel()
		h.t.Fatalf("gateway Run: %v", err)
	case <-time.After(awaitTimeout):
		cancel()
		h.t.Fatal("gateway not ready")
	}
	h.baseURL = "http://" + h.gw.Addr().String()
	var (
		once   sync.Once
		runErr error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(awaitTimeout):
				runErr = errors.New("gateway Run did not return")
			}
		})
		return runErr
	}
	h.t.Cleanup(func() {
		if err := stop(); err != nil {
			h.t.Errorf("gateway Run: %v", err)
		}
	})
	return stop
}

// sseEvent is one block of an event stream: an event, a retry hint or a comment.
type sseEvent struct {
	ID, Event, Data, Retry, Comment string
	HasID                           bool
}

// sseStream reads an open event stream block by block.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
	done   chan error // the read error that ended the stream (io.EOF: closed by the server)
	cancel context.CancelFunc
}

// streamRequest builds GET /v1/events.
func (h *harness) streamRequest(query string, header http.Header) *http.Request {
	h.t.Helper()
	path := "/v1/events"
	if query != "" {
		path += "?" + query
	}
	r, err := http.NewRequest(http.MethodGet, h.baseURL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	return r
}

// open sends GET /v1/events and returns the response, whose exchange it holds to the OpenAPI
// document: a refusal entirely, a stream by its status and headers (the body never ends).
func (h *harness) open(query string, header http.Header) (*http.Response, *sseStream) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := h.streamRequest(query, header).WithContext(ctx)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		cancel()
		h.t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		h.contract.CheckHTTP(h.t, r, nil, resp)
		return resp, nil
	}
	h.contract.Check(h.t, r, nil, gatewaytest.Response{Status: resp.StatusCode, Header: resp.Header})
	s := &sseStream{t: h.t, resp: resp, events: make(chan sseEvent, 4096), done: make(chan error, 1), cancel: cancel}
	h.t.Cleanup(s.close)
	go s.read()
	return resp, s
}

// connect opens a stream that must be accepted.
func (h *harness) connect(token string, header http.Header, query string) *sseStream {
	h.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	resp, s := h.open(query, header)
	if s == nil {
		body, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, body)
	}
	return s
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

func (s *sseStream) read() {
	br := bufio.NewReader(s.resp.Body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.done <- err
			close(s.events)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			s.events <- ev
			ev = sseEvent{}
			continue
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			ev.Comment = strings.TrimSpace(c)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID, ev.HasID = value, true
		case "event":
			ev.Event = value
		case "data":
			ev.Data = value
		case "retry":
			ev.Retry = value
		}
	}
}

// next returns the stream's next block.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatalf("the stream ended: %v", <-s.done)
		}
		return ev
	case <-time.After(awaitTimeout):
		s.t.Fatal("no event arrived")
	}
	return sseEvent{}
}

// nextEvent returns the next block that is an event, skipping comments (heartbeats) and
// retry hints.
func (s *sseStream) nextEvent() sseEvent {
	s.t.Helper()
	for {
		if ev := s.next(); ev.Event != "" {
			return ev
		}
	}
}

// notifications reads n notification events and returns their sequence numbers.
func (s *sseStream) notifications(n int) []int64 {
	s.t.Helper()
	var seqs []int64
	for range n {
		ev := s.nextEvent()
		if ev.Event != "notification" {
			s.t.Fatalf("event %q (data %s), want a notification; got %v so far", ev.Event, ev.Data, seqs)
		}
		var got realtimev1.Notification
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
			s.t.Fatalf("notification data %s: %v", ev.Data, err)
		}
		if ev.ID != strconv.FormatInt(got.Seq, 10) {
			s.t.Fatalf("event id %q, notification seq %d", ev.ID, got.Seq)
		}
		seqs = append(seqs, got.Seq)
	}
	return seqs
}

// ended waits until the server closes the stream, skipping what else it sends.
func (s *sseStream) ended() {
	s.t.Helper()
	deadline := time.After(awaitTimeout)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				if err := <-s.done; err != io.EOF {
					s.t.Fatalf("the stream ended with %v, want the server to close it", err)
				}
				return
			}
		case <-deadline:
			s.t.Fatal("the server did not close the stream")
		}
	}
}

// seqRange is from, from+1, ..., to.
func seqRange(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// counter is the sum of an int64 counter's data points whose attributes include attrs.
func (h *harness) counter(name string, attrs ...attribute.KeyValue) int64 {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		h.t.Fatal(err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if data, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range data.DataPoints {
					if hasAttrs(dp.Attributes, attrs) {
						sum += dp.Value
					}
				}
			}
		}
	}
	return sum
}

// histogramCount is the number of observations of a float64 histogram.
func (h *harness) histogramCount(name string) uint64 {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		h.t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if data, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range data.DataPoints {
					n += dp.Count
				}
			}
		}
	}
	return n
}

func hasAttrs(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}
