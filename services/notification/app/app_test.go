package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/notification/adapters"
	"github.com/piazza-social/piazza/services/notification/adapters/storetest"
	"github.com/piazza-social/piazza/services/notification/app"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// ---------------------------------------------------------------------------------- fakes

// followers streams each user's followers in batches of size, as user-service does. failAt > 0
// makes the walk fail once, before handing over batch number failAt.
type followers struct {
	size   int
	byUser map[string][]string

	mu      sync.Mutex
	failAt  int
	batches int
}

func (f *followers) Each(ctx context.Context, userID string, batch func(ids []string) error) error {
	for chunk := range slices.Chunk(f.byUser[userID], f.size) {
		f.mu.Lock()
		f.batches++
		fail := f.failAt > 0 && f.batches == f.failAt
		if fail {
			f.failAt = 0
		}
		f.mu.Unlock()
		if fail {
			return errors.New("user-service: stream broken")
		}
		if err := batch(slices.Clone(chunk)); err != nil {
			return err
		}
	}
	return nil
}

type users struct {
	mu    sync.Mutex
	names map[string]string
	calls int
	fail  error
}

func (u *users) Usernames(_ context.Context, ids []string) (map[string]string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	if u.fail != nil {
		return nil, u.fail
	}
	out := map[string]string{}
	for _, id := range ids {
		if n, ok := u.names[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

// presenceFake routes users to the instances in online and records every lookup.
type presenceFake struct {
	mu     sync.Mutex
	online map[string][]string
	calls  [][]string
	fail   error
}

func (p *presenceFake) Routes(_ context.Context, ids []string) (map[string][]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, slices.Clone(ids))
	if p.fail != nil {
		return nil, p.fail
	}
	out := map[string][]string{}
	for _, id := range ids {
		if inst, ok := p.online[id]; ok {
			out[id] = inst
		}
	}
	return out, nil
}

// pusher records the batches published per instance; instances in fail refuse them.
type pusher struct {
	mu      sync.Mutex
	batches map[string][]realtimev1.Batch
	fail    map[string]bool
}

func (p *pusher) Publish(_ context.Context, instance string, msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[instance] {
		return errors.New("redis: connection refused")
	}
	var b realtimev1.Batch
	if err := json.Unmarshal(msg, &b); err != nil {
		return err
	}
	p.batches[instance] = append(p.batches[instance], b)
	return nil
}

func (p *pusher) sent(instance string) []realtimev1.Batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.batches[instance])
}

// ---------------------------------------------------------------------------------- fixture

type fixture struct {
	app       *app.Application
	db        *database.DB
	store     *adapters.Store
	followers *followers
	users     *users
	presence  *presenceFake
	pusher    *pusher
	metrics   *sdkmetric.ManualReader
}

func newFixture(t *testing.T, cfg app.Config) *fixture {
	t.Helper()
	st, db := storetest.OpenSQLiteStore(t)
	f := &fixture{
		db: db, store: st,
		followers: &followers{size: 1000, byUser: map[string][]string{}},
		users:     &users{names: map[string]string{"author": "ann", "liker": "lee", "bob": "bob"}},
		presence:  &presenceFake{online: map[string][]string{}},
		pusher:    &pusher{batches: map[string][]realtimev1.Batch{}, fail: map[string]bool{}},
		metrics:   sdkmetric.NewManualReader(),
	}
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.metrics))
	a, err := app.New(cfg, app.Deps{Store: st, Followers: f.followers, Users: f.users, Routes: f.presence, Pusher: f.pusher}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.app = a
	return f
}

func envelope(t *testing.T, typ, aggregate string, payload any) events.Envelope {
	t.Helper()
	env, err := events.New(typ, aggregate, "post-service", payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (f *fixture) handle(t *testing.T, env events.Envelope) {
	t.Helper()
	if err := f.app.HandleEvent(t.Context(), env); err != nil {
		t.Fatalf("handle %s: %v", env.Type, err)
	}
}

func (f *fixture) inbox(t *testing.T, userID string) []domain.Notification {
	t.Helper()
	s, err := f.store.Since(t.Context(), userID, 0, domain.MaxSince)
	if err != nil {
		t.Fatal(err)
	}
	return s.Items
}

func (f *fixture) total(t *testing.T) (rows, users, maxSeq int64) {
	t.Helper()
	err := f.db.SQL().QueryRowContext(t.Context(),
		`SELECT count(*), count(DISTINCT user_id), COALESCE(max(seq), 0) FROM inbox_entries`).Scan(&rows, &users, &maxSeq)
	if err != nil {
		t.Fatal(err)
	}
	return rows, users, maxSeq
}

// sum adds up the data points of the named counter whose attributes include want.
func (f *fixture) sum(t *testing.T, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	return counterSum(t, f.metrics, name, want...)
}

// counterSum adds up the data points of the named counter in reader whose attributes include want.
func counterSum(t *testing.T, reader sdkmetric.Reader, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			data, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T, want an int64 sum", name, m.Data)
			}
			for _, dp := range data.DataPoints {
				match := true
				for _, kv := range want {
					if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
						match = false
					}
				}
				if match {
					total += dp.Value
				}
			}
		}
	}
	return total
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func liked(t *testing.T, author, liker string) events.Envelope {
	return envelope(t, eventsv1.PostLiked, author, eventsv1.PostLikedPayload{PostID: "post-1", AuthorID: author, LikerID: liker})
}

// ---------------------------------------------------------------------------------- fan-out

func TestPostReachesEveryFollowerOnceInBoundedBatches(t *testing.T) {
	const followerCount, batch = 2500, 400
	f := newFixture(t, app.Config{FanoutBatch: batch})
	fans := ids("fan", followerCount)
	// The stream hands over batches of 1000; the author appears too, as a bad stream might.
	f.followers.byUser["author"] = append(slices.Clone(fans), "author")
	for i, id := range fans {
		switch {
		case i%10 == 0:
			f.presence.online[id] = []string{"gw-a"}
		case i%25 == 1:
			f.presence.online[id] = []string{"gw-a", "gw-b"} // two devices on two gateways
		}
	}
	env := envelope(t, eventsv1.PostCreated, "author", eventsv1.PostCreatedPayload{PostID: "p1", AuthorID: "author", Text: "hello"})
	f.handle(t, env)

	rows, recipients, maxSeq := f.total(t)
	if rows != followerCount || recipients != followerCount || maxSeq != 1 {
		t.Fatalf("stored %d notifications for %d users (max seq %d); want one each for %d followers, seq 1", rows, recipients, maxSeq, followerCount)
	}
	if got := f.inbox(t, "author"); len(got) != 0 {
		t.Fatalf("the author was notified of their own post: %+v", got)
	}
	// One presence lookup per stored batch, each within the bound: 1000 → 400+400+200, twice,
	// then 500 (with the author dropped) → 400+100.
	var sizes []int
	looked := 0
	for _, c := range f.presence.calls {
		sizes = append(sizes, len(c))
		looked += len(c)
	}
	if !slices.Equal(sizes, []int{400, 400, 200, 400, 400, 200, 400, 100}) || looked != followerCount {
		t.Fatalf("presence lookups of sizes %v (%d ids), want one per batch of at most %d", sizes, looked, batch)
	}
	// One push per gateway per batch, each delivery to an online follower.
	for inst, wantUsers := range map[string]int{"gw-a": 250 + 100, "gw-b": 100} {
		sent := f.pusher.sent(inst)
		if len(sent) != len(sizes) {
			t.Errorf("%s got %d batches, want one per stored batch (%d)", inst, len(sent), len(sizes))
		}
		seen := map[string]bool{}
		for _, b := range sent {
			if len(b.Deliveries) > batch {
				t.Errorf("%s got a batch of %d deliveries", inst, len(b.Deliveries))
			}
			for _, d := range b.Deliveries {
				if seen[d.UserID] || d.Notification.Seq != 1 || d.Notification.ID != env.ID {
					t.Errorf("%s: delivery %+v repeated or wrong", inst, d)
				}
				seen[d.UserID] = true
			}
		}
		if len(seen) != wantUsers {
			t.Errorf("%s reached %d users, want %d", inst, len(seen), wantUsers)
		}
	}
	if got := f.sum(t, "notification.stored", attribute.String("type", eventsv1.PostCreated)); got != followerCount {
		t.Errorf("notification.stored = %d, want %d", got, followerCount)
	}
	if got := f.sum(t, "notification.push.published"); got != 2*int64(len(sizes)) {
		t.Errorf("notification.push.published = %d, want %d", got, 2*len(sizes))
	}
}

func TestFanOutInterruptedHalfWayCompletesOnRetryWithoutDuplicates(t *testing.T) {
	f := newFixture(t, app.Config{FanoutBatch: 300})
	f.followers.byUser["author"] = ids("fan", 2500)
	f.followers.failAt = 2 // the second follower batch fails, after the first was stored
	env := envelope(t, eventsv1.PostCreated, "author", eventsv1.PostCreatedPayload{PostID: "p1", AuthorID: "author", Text: "x"})
	err := f.app.HandleEvent(t.Context(), env)
	if err == nil || events.IsPermanent(err) {
		t.Fatalf("interrupted fan-out = %v, want a retryable error", err)
	}
	if rows, _, _ := f.total(t); rows != 1000 {
		t.Fatalf("%d notifications stored before the failure, want the first follower batch (1000)", rows)
	}
	f.handle(t, env) // the router's retry
	rows, recipients, maxSeq := f.total(t)
	if rows != 2500 || recipients != 2500 || maxSeq != 1 {
		t.Fatalf("after the retry: %d notifications, %d users, max seq %d; want 2500, 2500, 1", rows, recipients, maxSeq)
	}
	if got := f.sum(t, "notification.stored"); got != 2500 {
		t.Errorf("notification.stored = %d, want 2500 (redelivered ones not counted)", got)
	}
}

// ---------------------------------------------------------------------------------- recipients

func TestActingOnYourOwnPostNotifiesNobody(t *testing.T) {
	f := newFixture(t, app.Config{})
	f.presence.online["author"] = []string{"gw-a"}
	f.handle(t, liked(t, "author", "author"))
	f.handle(t, envelope(t, eventsv1.PostCommented, "author", eventsv1.PostCommentedPayload{
		PostID: "p1", AuthorID: "author", CommentID: "c1", CommenterID: "author", Text: "me too",
	}))
	if rows, _, _ := f.total(t); rows != 0 {
		t.Fatalf("%d notifications stored, want none", rows)
	}
	if f.users.calls != 0 || len(f.presence.calls) != 0 || len(f.pusher.sent("gw-a")) != 0 {
		t.Fatalf("users %d, presence %d, pushes %d; want no lookups and no push", f.users.calls, len(f.presence.calls), len(f.pusher.sent("gw-a")))
	}
}

func TestLikeCommentAndFollowNotifyTheirRecipientWithTheActor(t *testing.T) {
	f := newFixture(t, app.Config{})
	like := liked(t, "author", "liker")
	comment := envelope(t, eventsv1.PostCommented, "author", eventsv1.PostCommentedPayload{
		PostID: "post-1", AuthorID: "author", CommentID: "c1", CommenterID: "bob", Text: "nice",
	})
	follow := envelope(t, eventsv1.UserFollowed, "fan", eventsv1.UserFollowedPayload{
		FollowerID: "fan", FollowerUsername: "fanny", FolloweeID: "author",
	})
	ghost := liked(t, "author", "deleted-user") // no username any more
	for _, env := range []events.Envelope{like, comment, follow, ghost} {
		f.handle(t, env)
	}
	got := f.inbox(t, "author")
	want := []struct {
		env  events.Envelope
		data string
	}{
		{like, `{"actor":{"id":"liker","username":"lee"},"post_id":"post-1"}`},
		{comment, `{"actor":{"id":"bob","username":"bob"},"post_id":"post-1","comment_id":"c1","text":"nice"}`},
		{follow, `{"actor":{"id":"fan","username":"fanny"}}`},
		{ghost, `{"actor":{"id":"deleted-user","username":""},"post_id":"post-1"}`},
	}
	if len(got) != len(want) {
		t.Fatalf("inbox holds %d notifications, want %d", len(got), len(want))
	}
	for i, w := range want {
		n := got[i]
		if n.Seq != int64(i+1) || n.EventID != w.env.ID || n.Type != w.env.Type || string(n.Data) != w.data ||
			!n.CreatedAt.Equal(w.env.OccurredAt.Truncate(time.Microsecond)) || n.Read {
			t.Errorf("notification %d = %+v (data %s), want seq %d of %s with data %s", i, n, n.Data, i+1, w.env.Type, w.data)
		}
	}
	// The follow carried the follower's username: no lookup for it.
	if f.users.calls != 3 {
		t.Errorf("%d username lookups, want 3 (like, comment, ghost like)", f.users.calls)
	}
}

func TestAMessageNotifiesEveryParticipantButTheSenderWithTheWholeMessage(t *testing.T) {
	f := newFixture(t, app.Config{FanoutBatch: 2})
	f.presence.online["author"] = []string{"gw-a"}
	f.presence.online["liker"] = []string{"gw-a", "gw-b"}
	text := strings.Repeat("long message ", 300) // far beyond a preview
	sentAt := time.Date(2031, 5, 6, 7, 8, 9, 123456000, time.UTC)
	env := envelope(t, eventsv1.MessageSent, "conv-1", eventsv1.MessageSentPayload{
		MessageID: "msg-1", ConversationID: "conv-1", SenderID: "bob",
		ParticipantIDs: []string{"author", "bob", "liker", "away"}, Text: text, ClientMsgID: "web-1", SentAt: sentAt,
	})
	f.handle(t, env)
	f.handle(t, env) // redelivered

	wantData, err := json.Marshal(map[string]any{
		"actor":           map[string]string{"id": "bob", "username": "bob"},
		"conversation_id": "conv-1",
		"message":         map[string]any{"id": "msg-1", "text": text, "client_msg_id": "web-1", "sent_at": sentAt},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"author", "liker", "away"} {
		got := f.inbox(t, user)
		if len(got) != 1 || got[0].Seq != 1 || got[0].Type != eventsv1.MessageSent || got[0].EventID != env.ID || !jsonEqual(t, got[0].Data, wantData) {
			t.Errorf("%s's inbox %+v, want the message once (data %s)", user, got, wantData)
		}
	}
	if got := f.inbox(t, "bob"); len(got) != 0 {
		t.Errorf("the sender was notified of their own message: %+v", got)
	}
	// Recipients in batches of 2: author+liker, then away; each batch pushed to its gateways,
	// once per handling.
	var sizes []int
	for _, c := range f.presence.calls {
		sizes = append(sizes, len(c))
	}
	if !slices.Equal(sizes, []int{2, 1, 2, 1}) {
		t.Errorf("presence lookups of sizes %v, want [2 1] per handling", sizes)
	}
	for inst, want := range map[string][]string{"gw-a": {"author", "liker"}, "gw-b": {"liker"}} {
		sent := f.pusher.sent(inst)
		if len(sent) != 2 {
			t.Fatalf("%s got %d batches, want 2 (one per handling)", inst, len(sent))
		}
		var users []string
		for _, d := range sent[0].Deliveries {
			users = append(users, d.UserID)
		}
		if !slices.Equal(users, want) {
			t.Errorf("%s delivered to %q, want %q", inst, users, want)
		}
	}
	if got := f.sum(t, "notification.stored", attribute.String("type", eventsv1.MessageSent)); got != 3 {
		t.Errorf("notification.stored = %d, want 3", got)
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

func TestEventsThatNotifyNobodyAreAcked(t *testing.T) {
	f := newFixture(t, app.Config{})
	for _, env := range []events.Envelope{
		envelope(t, eventsv1.UserRegistered, "u1", eventsv1.UserRegisteredPayload{UserID: "u1", Username: "u"}),
		envelope(t, eventsv1.UserUnfollowed, "u1", eventsv1.UserUnfollowedPayload{FollowerID: "u1", FolloweeID: "u2"}),
		envelope(t, eventsv1.PostDeleted, "u1", eventsv1.PostDeletedPayload{PostID: "p", AuthorID: "u1"}),
		envelope(t, eventsv1.MessageSent, "c1", eventsv1.MessageSentPayload{
			MessageID: "m1", ConversationID: "c1", SenderID: "u1", ParticipantIDs: []string{"u1"}, Text: "note to self",
		}),
		envelope(t, "conversation.renamed", "c1", map[string]string{"name": "not a notification"}),
	} {
		if err := f.app.HandleEvent(t.Context(), env); err != nil {
			t.Errorf("%s: %v, want nil (acked)", env.Type, err)
		}
	}
	if rows, _, _ := f.total(t); rows != 0 {
		t.Fatalf("%d notifications stored, want none", rows)
	}
}

func TestMalformedOrIncompletePayloadsArePermanentFailures(t *testing.T) {
	f := newFixture(t, app.Config{})
	tests := []struct {
		typ, payload string
	}{
		{eventsv1.PostLiked, `{"post_id": 5}`},
		{eventsv1.PostLiked, `["not", "an", "object"]`},
		{eventsv1.PostLiked, `{}`},
		{eventsv1.PostCreated, `{"post_id": "p", "text": "no author"}`},
		{eventsv1.PostCommented, `{"post_id": "p", "author_id": "a", "commenter_id": "b"}`},
		{eventsv1.UserFollowed, `{"follower_id": "a"}`},
		{eventsv1.MessageSent, `{"message_id": "m", "conversation_id": "c", "sender_id": "a"}`},
		{eventsv1.MessageSent, `{"message_id": "m", "conversation_id": "c", "sender_id": "a", "participant_ids": "b"}`},
	}
	for _, tc := range tests {
		env := envelope(t, tc.typ, "a", map[string]string{})
		env.Payload = json.RawMessage(tc.payload)
		err := f.app.HandleEvent(t.Context(), env)
		if !events.IsPermanent(err) {
			t.Errorf("%s %s: err = %v, want a Permanent error", tc.typ, tc.payload, err)
		}
	}
	if rows, _, _ := f.total(t); rows != 0 {
		t.Fatalf("%d notifications stored, want none", rows)
	}
}

func TestFailedUsernameLookupIsRetriedNotDeadLettered(t *testing.T) {
	f := newFixture(t, app.Config{})
	f.users.fail = errors.New("user-service unavailable")
	err := f.app.HandleEvent(t.Context(), liked(t, "author", "liker"))
	if err == nil || events.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if rows, _, _ := f.total(t); rows != 0 {
		t.Fatalf("%d notifications stored, want none", rows)
	}
}

// ---------------------------------------------------------------------------------- routing

func TestRedeliveredEventStoresNothingNewAndPushesTheSameSeqAgain(t *testing.T) {
	f := newFixture(t, app.Config{})
	f.presence.online["author"] = []string{"gw-a"}
	env := liked(t, "author", "liker")
	f.handle(t, env)
	f.handle(t, env) // redelivered
	if got := f.inbox(t, "author"); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("inbox %+v, want one notification, seq 1", got)
	}
	sent := f.pusher.sent("gw-a")
	if len(sent) != 2 {
		t.Fatalf("%d pushes, want 2 (the redelivery pushes the stored notification again)", len(sent))
	}
	if a, b := sent[0].Deliveries[0].Notification, sent[1].Deliveries[0].Notification; a.Seq != 1 || b.Seq != 1 || a.ID != b.ID {
		t.Fatalf("pushed %+v then %+v, want the same notification with seq 1", a, b)
	}
	// The next event takes seq 2: the redelivery burnt none.
	f.handle(t, liked(t, "author", "bob"))
	if got := f.inbox(t, "author"); len(got) != 2 || got[1].Seq != 2 {
		t.Fatalf("inbox %+v, want seqs 1, 2", got)
	}
	if got := f.sum(t, "notification.stored"); got != 2 {
		t.Errorf("notification.stored = %d, want 2", got)
	}
}

func TestOfflineRecipientsGetNoPush(t *testing.T) {
	f := newFixture(t, app.Config{})
	f.handle(t, liked(t, "author", "liker"))
	if len(f.presence.calls) != 1 {
		t.Fatalf("%d presence lookups, want 1", len(f.presence.calls))
	}
	if got := f.sum(t, "notification.push.published"); got != 0 || len(f.pusher.batches) != 0 {
		t.Fatalf("%d pushes for an offline user, want none", got)
	}
	if len(f.inbox(t, "author")) != 1 {
		t.Fatal("the offline user's inbox does not hold the notification")
	}
}

func TestFailedPushIsCountedButTheEventSucceeds(t *testing.T) {
	f := newFixture(t, app.Config{})
	f.followers.byUser["author"] = []string{"on-a", "on-b"}
	f.presence.online["on-a"] = []string{"gw-a"}
	f.presence.online["on-b"] = []string{"gw-b"}
	f.pusher.fail["gw-a"] = true
	f.handle(t, envelope(t, eventsv1.PostCreated, "author", eventsv1.PostCreatedPayload{PostID: "p", AuthorID: "author", Text: "t"}))
	if len(f.pusher.sent("gw-b")) != 1 {
		t.Fatal("a failing gateway kept the other from getting its push")
	}
	if got := f.sum(t, "notification.push.failures", attribute.String("stage", "publish")); got != 1 {
		t.Errorf("publish failures = %d, want 1", got)
	}

	f.presence.fail = errors.New("redis: timeout")
	f.handle(t, liked(t, "on-a", "liker"))
	if got := f.sum(t, "notification.push.failures", attribute.String("stage", "routes")); got != 1 {
		t.Errorf("routes failures = %d, want 1", got)
	}
	if len(f.inbox(t, "on-a")) != 2 {
		t.Fatal("notifications whose push failed are not in the inbox")
	}
}

func TestPushedBatchCarriesTheTraceContextAndTheEventTime(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f := newFixture(t, app.Config{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	f.presence.online["author"] = []string{"gw-a"}
	ctx, span := tp.Tracer("test").Start(context.Background(), "consume")
	env := liked(t, "author", "liker")
	if err := f.app.HandleEvent(ctx, env); err != nil {
		t.Fatal(err)
	}
	span.End()
	sent := f.pusher.sent("gw-a")
	if len(sent) != 1 {
		t.Fatalf("%d pushes, want 1", len(sent))
	}
	carrier := propagation.MapCarrier{"traceparent": sent[0].TraceParent}
	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	if !got.IsValid() || got.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("traceparent %q does not continue trace %s", sent[0].TraceParent, span.SpanContext().TraceID())
	}
	// consume → notification.deliver → send gateway_events (producer), whose context the
	// batch carries.
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	deliver, send := spans["notification.deliver"], spans["send gateway_events"]
	if deliver == nil || send == nil {
		t.Fatalf("spans %v, want notification.deliver and send gateway_events", spans)
	}
	if deliver.Parent().SpanID() != span.SpanContext().SpanID() || send.Parent().SpanID() != deliver.SpanContext().SpanID() ||
		send.SpanKind() != trace.SpanKindProducer || got.SpanID() != send.SpanContext().SpanID() {
		t.Fatalf("the batch carries span %s; want the producer span %s under the delivery under the consumer", got.SpanID(), send.SpanContext().SpanID())
	}
	if want := env.OccurredAt.Truncate(time.Microsecond); !sent[0].OccurredAt.Equal(want) {
		t.Fatalf("occurred_at %s, want the event's %s", sent[0].OccurredAt, want)
	}
	d := sent[0].Deliveries
	if len(d) != 1 || d[0].UserID != "author" || d[0].Notification.Type != eventsv1.PostLiked || len(d[0].Notification.Data) == 0 {
		t.Fatalf("deliveries %+v, want the author's post.liked", d)
	}
}

// ---------------------------------------------------------------------------------- inbox

func TestInboxQueriesPageCountAndMarkRead(t *testing.T) {
	f := newFixture(t, app.Config{})
	for range 5 {
		f.handle(t, liked(t, "author", "liker"))
	}
	ctx := t.Context()
	p, err := f.app.ListNotifications.Handle(ctx, app.ListNotifications{UserID: "author", Limit: 3})
	if err != nil || len(p.Items) != 3 || p.Items[0].Seq != 5 || p.NextCursor == "" {
		t.Fatalf("first page %+v, %v; want seqs 5..3 and a cursor", p, err)
	}
	p, err = f.app.ListNotifications.Handle(ctx, app.ListNotifications{UserID: "author", Limit: 3, Cursor: p.NextCursor})
	if err != nil || len(p.Items) != 2 || p.Items[0].Seq != 2 || p.NextCursor != "" {
		t.Fatalf("second page %+v, %v; want seqs 2, 1 and no cursor", p, err)
	}
	s, err := f.app.ListSince.Handle(ctx, app.ListSince{UserID: "author", AfterSeq: 3})
	if err != nil || len(s.Items) != 2 || s.Items[0].Seq != 4 || s.HasMore {
		t.Fatalf("since 3 = %+v, %v", s, err)
	}
	if _, err := f.app.MarkRead.Handle(ctx, app.MarkRead{UserID: "author", UpToSeq: 4}); err != nil {
		t.Fatal(err)
	}
	u, err := f.app.UnreadCount.Handle(ctx, app.UnreadCount{UserID: "author"})
	if err != nil || u != (domain.Unread{Count: 1, LastSeq: 5}) {
		t.Fatalf("unread %+v, %v; want 1 of 5", u, err)
	}
}

func TestInvalidInboxRequestsAreValidationFailures(t *testing.T) {
	f := newFixture(t, app.Config{})
	ctx := t.Context()
	tests := []struct {
		name     string
		call     func() error
		pointers []string
	}{
		{"list without user, bad cursor and limit", func() error {
			_, err := f.app.ListNotifications.Handle(ctx, app.ListNotifications{Cursor: "bogus", Limit: 101})
			return err
		}, []string{"/user_id", "/limit", "/cursor"}},
		{"since with negative seq and limit", func() error {
			_, err := f.app.ListSince.Handle(ctx, app.ListSince{UserID: "u", AfterSeq: -1, Limit: 1001})
			return err
		}, []string{"/after_seq", "/limit"}},
		{"unread without user", func() error {
			_, err := f.app.UnreadCount.Handle(ctx, app.UnreadCount{})
			return err
		}, []string{"/user_id"}},
		{"mark read backwards of zero", func() error {
			_, err := f.app.MarkRead.Handle(ctx, app.MarkRead{UserID: "u", UpToSeq: -2})
			return err
		}, []string{"/up_to_seq"}},
	}
	for _, tc := range tests {
		err := tc.call()
		e, ok := errors.AsType[*errs.Error](err)
		if !ok || e.Code != errs.ValidationFailed {
			t.Errorf("%s: err = %v, want validation_failed", tc.name, err)
			continue
		}
		var got []string
		for _, fv := range e.Fields {
			got = append(got, fv.Pointer)
		}
		if !slices.Equal(got, tc.pointers) {
			t.Errorf("%s: pointers %v, want %v", tc.name, got, tc.pointers)
		}
	}
}

func TestNewRefusesMissingDependenciesAndBadConfig(t *testing.T) {
	st, _ := storetest.OpenSQLiteStore(t)
	full := app.Deps{Store: st, Followers: &followers{}, Users: &users{}, Routes: &presenceFake{}, Pusher: &pusher{}}
	if _, err := app.New(app.Config{}, full, nil); err != nil {
		t.Fatalf("New with every dependency: %v", err)
	}
	for name, mutate := range map[string]func(d *app.Deps){
		"no store":     func(d *app.Deps) { d.Store = nil },
		"no followers": func(d *app.Deps) { d.Followers = nil },
		"no users":     func(d *app.Deps) { d.Users = nil },
		"no routes":    func(d *app.Deps) { d.Routes = nil },
		"no pusher":    func(d *app.Deps) { d.Pusher = nil },
	} {
		d := full
		mutate(&d)
		if _, err := app.New(app.Config{}, d, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	for _, cfg := range []app.Config{{FanoutBatch: -1}, {FanoutBatch: domain.MaxDeliveryBatch + 1}, {PushTimeout: -time.Second}} {
		if _, err := app.New(cfg, full, nil); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
