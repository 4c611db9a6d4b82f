package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/api/realtimev1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway"
)

// The event stream, over real HTTP: frames and headers, ordering and replay, slow clients,
// lifetimes, presence, tickets and shutdown.

func lastEventID(id int64) http.Header {
	return http.Header{"Last-Event-Id": {strconv.FormatInt(id, 10)}}
}

func reason(r string) attribute.KeyValue { return attribute.String("reason", r) }

func TestStreamSendsEachNotificationWithItsSeqAsTheEventID(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")

	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Connection":        "keep-alive",
	} {
		if got := s.resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	first := s.next()
	retry, err := strconv.Atoi(first.Retry)
	if err != nil || retry < 2000 || retry >= 5000 {
		t.Errorf("first frame %+v: want a retry hint of 2000-4999 ms", first)
	}

	n := h.inbox.add(alice.User.ID, 1)[0]
	h.push.deliver(t, alice.User.ID, n)
	ev := s.nextEvent()
	if ev.Event != "notification" || ev.ID != "1" {
		t.Fatalf("event %+v", ev)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"seq": 1.0, "id": n.ID, "type": "post.liked", "read": false, "data": map[string]any{"n": 1.0},
		"created_at": h.clock.Now().UTC().Format(time.RFC3339),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("data %v,\nwant %v", got, want)
	}
	await(t, "the delivery is counted with its latency", func() bool {
		return h.counter("gateway.sse.deliveries") == 1 && h.histogramCount("gateway.sse.delivery_latency") == 1
	})
	if n := h.counter("gateway.sse.connections"); n != 1 {
		t.Errorf("open connections gauge %d, want 1", n)
	}
}

func TestEveryStreamOfAUserGetsItsNotifications(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice, bob := h.signup("alice"), h.signup("bob")
	tabs := []*sseStream{h.connect(alice.AccessToken, nil, ""), h.connect(alice.AccessToken, nil, "")}
	other := h.connect(bob.AccessToken, nil, "")

	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 2)...)
	for i, s := range tabs {
		if got := s.notifications(2); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("tab %d: %v", i, got)
		}
	}
	h.push.deliver(t, bob.User.ID, h.inbox.add(bob.User.ID, 1)...)
	if got := other.notifications(1); !slices.Equal(got, []int64{1}) {
		t.Errorf("bob: %v (alice's notifications must not reach him)", got)
	}
}

func TestResumingReplaysTheMissedThenLiveWithNoGapAndNoDuplicate(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	uid := alice.User.ID
	stored := h.inbox.add(uid, 10)

	// The replay reads the inbox (1..10 after 3), then is held up while live deliveries arrive,
	// out of order and overlapping it: 12, 9, 11 (11 and 12 stored meanwhile).
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.inbox.setHook(func(*notificationv1.ListSinceRequest) {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	s := h.connect(alice.AccessToken, lastEventID(3), "")
	select {
	case <-entered:
	case <-time.After(awaitTimeout):
		t.Fatal("no replay started")
	}
	more := h.inbox.add(uid, 2)
	h.push.deliver(t, uid, more[1])
	h.push.deliver(t, uid, stored[8])
	h.push.deliver(t, uid, more[0])
	h.push.settle(t) // all three are queued on the stream
	close(release)

	h.push.deliver(t, uid, h.inbox.add(uid, 1)...) // 13, live after the replay
	if got := s.notifications(10); !slices.Equal(got, seqRange(4, 13)) {
		t.Fatalf("got %v, want 4..13 once each, in order", got)
	}
	// 14 is queued behind everything above: a duplicate of any of it would come first.
	h.push.deliver(t, uid, h.inbox.add(uid, 1)...)
	if got := s.notifications(1); !slices.Equal(got, []int64{14}) {
		t.Fatalf("after 13: %v, want 14", got)
	}
	await(t, "the duplicates are counted", func() bool { return h.counter("gateway.sse.duplicates") >= 2 })
}

func TestResumingWithTheQueryParameterReplays(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 5)
	s := h.connect(alice.AccessToken, nil, "last_event_id=2")
	if got := s.notifications(3); !slices.Equal(got, seqRange(3, 5)) {
		t.Fatalf("got %v, want 3..5", got)
	}
}

func TestReplayPagesThroughTheInbox(t *testing.T) {
	h := newHarness(t)
	h.inbox.pageCap = 300
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 700)
	s := h.connect(alice.AccessToken, lastEventID(0), "")
	if got := s.notifications(700); !slices.Equal(got, seqRange(1, 700)) {
		t.Fatalf("got %d notifications, not 1..700 in order", len(got))
	}
	if n := h.inbox.callCount("ListSince"); n != 3 {
		t.Errorf("%d ListSince calls, want 3 pages of at most 300", n)
	}
	await(t, "the replay is counted", func() bool { return h.counter("gateway.sse.replayed") == 700 })
}

func TestANewStreamStartsLiveFromTheNewestNotification(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	old := h.inbox.add(alice.User.ID, 3)
	s := h.connect(alice.AccessToken, nil, "")
	h.push.deliver(t, alice.User.ID, old[2]) // older than the stream: the client fetches those itself
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if got := s.notifications(1); !slices.Equal(got, []int64{4}) {
		t.Fatalf("got %v, want only 4", got)
	}
	if n := h.inbox.callCount("ListSince"); n != 0 {
		t.Errorf("%d ListSince calls, want none: nothing to replay", n)
	}
}

func TestALiveGapIsFilledFromTheInbox(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 5)
	s := h.connect(alice.AccessToken, nil, "")
	ns := h.inbox.add(alice.User.ID, 3) // 6, 7, 8; only 8 is pushed: 6 and 7 were lost on the way
	h.push.deliver(t, alice.User.ID, ns[2])
	h.push.deliver(t, alice.User.ID, ns[0]) // a late 6: a duplicate by now
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if got := s.notifications(4); !slices.Equal(got, seqRange(6, 9)) {
		t.Fatalf("got %v, want 6..9", got)
	}
}

func TestReplayBeyondTheLimitIsAResyncThenLive(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 1500)
	s := h.connect(alice.AccessToken, lastEventID(100), "")

	ev := s.nextEvent()
	if ev.Event != "resync" || ev.ID != "1500" || ev.Data != `{"last_seq":1500}` {
		t.Fatalf("first event %+v, want resync with id 1500", ev)
	}
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if got := s.notifications(1); !slices.Equal(got, []int64{1501}) {
		t.Fatalf("got %v, want 1501", got)
	}
	if n := h.inbox.callCount("ListSince"); n != 0 {
		t.Errorf("%d ListSince calls: a resync replays nothing", n)
	}
}

func TestALiveGapBeyondTheLimitIsAResync(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	ns := h.inbox.add(alice.User.ID, 1200)
	h.push.deliver(t, alice.User.ID, ns[1199])
	if ev := s.nextEvent(); ev.Event != "resync" || ev.ID != "1200" {
		t.Fatalf("event %+v, want resync with id 1200", ev)
	}
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if got := s.notifications(1); !slices.Equal(got, []int64{1201}) {
		t.Fatalf("got %v, want 1201", got)
	}
	await(t, "the resync is counted", func() bool { return h.counter("gateway.sse.resyncs") == 1 })
}

func TestResumingFromAnIDTheInboxNeverReachedIsAResync(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 5)
	s := h.connect(alice.AccessToken, lastEventID(9999), "")
	if ev := s.nextEvent(); ev.Event != "resync" || ev.ID != "5" {
		t.Fatalf("event %+v, want resync with id 5", ev)
	}
}

func TestMalformedLastEventIDsAreRejected(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	for _, tc := range []struct {
		name   string
		header http.Header
		query  string
	}{
		{"negative header", http.Header{"Last-Event-Id": {"-1"}}, ""},
		{"word header", http.Header{"Last-Event-Id": {"seven"}}, ""},
		{"plus sign", http.Header{"Last-Event-Id": {"+7"}}, ""},
		{"two headers", http.Header{"Last-Event-Id": {"1", "2"}}, ""},
		{"query overflow", nil, "last_event_id=99999999999999999999"},
		{"query twice", nil, "last_event_id=1&last_event_id=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{"Authorization": {"Bearer " + alice.AccessToken}}
			for k, v := range tc.header {
				hdr[k] = v
			}
			resp, s := h.open(tc.query, hdr)
			if s != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestAnExpiredOrMissingTokenIsRefusedBeforeTheStream(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, tc := range []struct {
		name   string
		header http.Header
		code   errs.Code
	}{
		{"expired", http.Header{"Authorization": {"Bearer " + tokenExpired}}, errs.TokenExpired},
		{"tampered", http.Header{"Authorization": {"Bearer " + tokenTampered}}, errs.TokenInvalid},
		{"none", nil, errs.TokenMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, s := h.open("", tc.header)
			if s != nil {
				t.Fatal("a stream was opened")
			}
			var p fullProblem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnauthorized || p.Code != string(tc.code) {
				t.Fatalf("got %d %s, want 401 %s", resp.StatusCode, p.Code, tc.code)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate challenge")
			}
		})
	}
}

func TestTheStreamEndsWithTokenExpiredWhenTheTokenExpires(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	s.next() // the retry hint: the stream is up
	h.clock.Advance(accessTTL)
	if ev := s.nextEvent(); ev.Event != "token_expired" {
		t.Fatalf("event %+v, want token_expired", ev)
	}
	s.ended()
	await(t, "the disconnect is counted", func() bool { return h.counter("gateway.sse.disconnects", reason("token_expired")) == 1 })
}

func TestTheStreamEndsWithReconnectAtItsMaximumLifetime(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.SSE.MaxLifetime = time.Minute })
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	s.next()
	h.clock.Advance(66 * time.Second) // beyond a minute plus its 10% jitter
	if ev := s.nextEvent(); ev.Event != "reconnect" {
		t.Fatalf("event %+v, want reconnect", ev)
	}
	s.ended()
	await(t, "the disconnect is counted", func() bool { return h.counter("gateway.sse.disconnects", reason("max_lifetime")) == 1 })
}

func TestAnIdleStreamGetsAHeartbeat(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	s.next()
	h.clock.Advance(25 * time.Second)
	if ev := s.next(); ev.Comment != "ping" {
		t.Fatalf("got %+v, want a ping comment", ev)
	}
	// Pinged just now: the next one is due 25 s later, not at the next sweep.
	h.clock.Advance(time.Second)
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if ev := s.next(); ev.Event != "notification" {
		t.Fatalf("got %+v, want the notification and no other ping before it", ev)
	}
}

func TestAStalledClientIsDisconnectedAndDelaysNobody(t *testing.T) {
	// A long write timeout: only the hub's slow-consumer verdict can free the stalled stream.
	h := newHarness(t, func(c *gateway.Config) {
		c.SSE.QueueSize = 128
		c.SSE.WriteTimeout = 2 * time.Minute
	})
	h.start()
	slow, fast := h.signup("slow"), h.signup("fast")

	// The stalled client opens its stream over a raw connection with a tiny receive buffer,
	// and never reads.
	raw, err := net.Dial("tcp", h.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if err := raw.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(raw, "GET /v1/events HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer %s\r\n\r\n", slow.AccessToken); err != nil {
		t.Fatal(err)
	}
	await(t, "the stalled stream is registered", func() bool {
		reg, _ := h.presenceStore.connections(slow.User.ID)
		return len(reg) == 1
	})
	healthy := h.connect(fast.AccessToken, nil, "")

	// 16 MiB for the stalled stream: the socket buffers on both sides hold at most about 4 MiB
	// (the kernel's limits here), so its writer is now blocked in a write, with frames queued.
	pad := strings.Repeat("x", 256<<10)
	for seq := int64(1); seq <= 64; seq++ {
		h.push.deliver(t, slow.User.ID, realtimev1.Notification{Seq: seq, ID: "big", Type: "post.liked", Data: json.RawMessage(`{"pad":"` + pad + `"}`)})
	}
	// The healthy client is served all the same.
	h.push.deliver(t, fast.User.ID, h.inbox.add(fast.User.ID, 1)...)
	if got := healthy.notifications(1); !slices.Equal(got, []int64{1}) {
		t.Fatalf("healthy client got %v", got)
	}
	if _, gone := h.presenceStore.connections(slow.User.ID); len(gone) != 0 {
		t.Fatal("the stalled stream was closed before its queue overflowed")
	}

	// Its queue overflows: it is closed at once, its blocked write aborted.
	for seq := int64(65); seq <= 64+130; seq++ {
		h.push.deliver(t, slow.User.ID, realtimev1.Notification{Seq: seq, ID: "small", Type: "post.liked"})
	}
	await(t, "the stalled stream is closed", func() bool {
		_, gone := h.presenceStore.connections(slow.User.ID)
		return len(gone) == 1
	})
	if n := h.counter("gateway.sse.disconnects", reason("slow_consumer")); n != 1 {
		t.Errorf("slow_consumer disconnects: %d, want 1", n)
	}
	if n := h.counter("gateway.sse.dropped"); n < 1 {
		t.Errorf("dropped deliveries: %d, want at least 1", n)
	}
	h.push.deliver(t, fast.User.ID, h.inbox.add(fast.User.ID, 1)...)
	if got := healthy.notifications(1); !slices.Equal(got, []int64{2}) {
		t.Fatalf("healthy client got %v after the slow one was dropped", got)
	}
}

func TestAStreamWhoseInboxFailsMidwayIsClosed(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 3)
	h.inbox.fail["ListSince"] = errs.New(errs.Unavailable, "database down")
	s := h.connect(alice.AccessToken, lastEventID(1), "")
	s.ended()
	await(t, "the disconnect is counted", func() bool { return h.counter("gateway.sse.disconnects", reason("inbox_error")) == 1 })
}

func TestAStreamIsRefusedWhileTheInboxIsUnavailable(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	h.inbox.fail["UnreadCount"] = errs.New(errs.Unavailable, "database down")
	resp, s := h.open("", http.Header{"Authorization": {"Bearer " + alice.AccessToken}})
	if s != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	reg, gone := h.presenceStore.connections(alice.User.ID)
	if len(reg) != 1 || len(gone) != 1 {
		t.Errorf("presence: %d registered, %d removed; want the refused connection removed again", len(reg), len(gone))
	}
	if envs, _ := h.events.of(eventsv1.PresenceConnected); len(envs) != 0 {
		t.Errorf("%d presence.connected events for a refused stream", len(envs))
	}
}

func TestPresenceIsRegisteredRenewedAndRemovedWithItsEvents(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.SSE.PresenceRefresh = 5 * time.Millisecond })
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	s.next()

	reg, _ := h.presenceStore.connections(alice.User.ID)
	if len(reg) != 1 || reg[0].InstanceID != "gw-test" || reg[0].ConnectionID == "" {
		t.Fatalf("registered %+v", reg)
	}
	conn := reg[0]
	await(t, "the entry is renewed", func() bool { return h.presenceStore.refreshCount(conn) >= 2 })
	await(t, "presence.connected is published", func() bool {
		envs, _ := h.events.of(eventsv1.PresenceConnected)
		return len(envs) == 1
	})
	envs, topics := h.events.of(eventsv1.PresenceConnected)
	var p eventsv1.PresencePayload
	if err := envs[0].DecodePayload(&p); err != nil {
		t.Fatal(err)
	}
	if topics[0] != eventsv1.TopicPresence || envs[0].AggregateID != alice.User.ID ||
		p.UserID != alice.User.ID || p.ConnectionID != conn.ConnectionID || p.InstanceID != "gw-test" {
		t.Errorf("event on %q: %+v, payload %+v", topics[0], envs[0], p)
	}

	s.close() // the client goes away
	await(t, "the entry is removed", func() bool {
		_, gone := h.presenceStore.connections(alice.User.ID)
		return len(gone) == 1 && gone[0] == conn
	})
	await(t, "presence.disconnected is published", func() bool {
		envs, _ := h.events.of(eventsv1.PresenceDisconnected)
		return len(envs) == 1
	})
	envs, _ = h.events.of(eventsv1.PresenceDisconnected)
	if err := envs[0].DecodePayload(&p); err != nil || p.ConnectionID != conn.ConnectionID {
		t.Errorf("disconnected payload %+v, %v", p, err)
	}
	await(t, "the disconnect is counted", func() bool { return h.counter("gateway.sse.disconnects", reason("client_closed")) == 1 })
	// A renewal must not bring the removed entry back.
	renewed := h.presenceStore.refreshCount(conn)
	h.presenceStore.mu.Lock()
	_, live := h.presenceStore.live[conn]
	h.presenceStore.mu.Unlock()
	if live {
		t.Errorf("the closed connection's entry is live again (renewed %d times)", renewed)
	}
}

func TestPresenceEventsThatCannotBePublishedAreCountedAndLogged(t *testing.T) {
	h := newHarness(t)
	h.events.setFailing(errors.New("bus down"))
	h.start()
	alice := h.signup("alice")
	s := h.connect(alice.AccessToken, nil, "")
	s.next()
	await(t, "the lost event is counted", func() bool {
		return h.counter("gateway.presence.events_lost", attribute.String("why", "publish")) >= 1
	})
	if !strings.Contains(h.logs.String(), "presence events not published") {
		t.Errorf("nothing logged: %s", h.logs)
	}
}

func TestShutdownClosesEveryStreamWithReconnect(t *testing.T) {
	h := newHarness(t)
	stop := h.start()
	alice, bob := h.signup("alice"), h.signup("bob")
	streams := []*sseStream{h.connect(alice.AccessToken, nil, ""), h.connect(bob.AccessToken, nil, "")}
	for _, s := range streams {
		s.next()
	}
	// Run returns nil only if the HTTP drain completed: the streams did not hold it up.
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, s := range streams {
		if ev := s.nextEvent(); ev.Event != "reconnect" {
			t.Errorf("event %+v, want reconnect", ev)
		}
		s.ended()
	}
	// The hub published the closed streams' presence events before Run returned.
	if envs, _ := h.events.of(eventsv1.PresenceDisconnected); len(envs) != 2 {
		t.Errorf("%d presence.disconnected events, want 2", len(envs))
	}
	if n := h.counter("gateway.sse.disconnects", reason("shutdown")); n != 2 {
		t.Errorf("shutdown disconnects: %d, want 2", n)
	}
}

// ticket issues a stream ticket for token.
func (h *harness) ticket(token string) string {
	h.t.Helper()
	tk, _ := h.issueTicket(token)
	return tk
}

func (h *harness) issueTicket(token string) (ticket string, expiresIn int64) {
	h.t.Helper()
	w := h.do(req{method: "POST", path: "/v1/events/ticket", token: token})
	if w.Code != http.StatusCreated {
		h.t.Fatalf("POST /v1/events/ticket: %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		h.t.Errorf("Cache-Control %q", cc)
	}
	body := decodeJSON[struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
	}](h.t, w)
	return body.Ticket, body.ExpiresIn
}

func wantRefused(t *testing.T, resp *http.Response, s *sseStream, code errs.Code) {
	t.Helper()
	if s != nil {
		t.Fatal("a stream was opened")
	}
	var p fullProblem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || p.Code != string(code) {
		t.Fatalf("got %d %s, want 401 %s", resp.StatusCode, p.Code, code)
	}
}

func TestATicketOpensOneStreamOnce(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	tk, expiresIn := h.issueTicket(alice.AccessToken)
	if expiresIn != 30 {
		t.Errorf("expires_in %d, want 30", expiresIn)
	}

	s := h.connect("", nil, "ticket="+tk)
	h.push.deliver(t, alice.User.ID, h.inbox.add(alice.User.ID, 1)...)
	if got := s.notifications(1); !slices.Equal(got, []int64{1}) {
		t.Fatalf("got %v", got)
	}
	resp, again := h.open("ticket="+tk, nil)
	wantRefused(t, resp, again, errs.TokenInvalid)
}

func TestATicketExpiresAfterThirtySeconds(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	tk := h.ticket(alice.AccessToken)
	h.clock.Advance(30 * time.Second)
	resp, s := h.open("ticket="+tk, nil)
	wantRefused(t, resp, s, errs.TokenInvalid)
}

func TestATicketForATokenThatHasExpiredIsRefusedAsExpired(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.TicketTTL = time.Hour })
	h.start()
	alice := h.signup("alice")
	tk := h.ticket(alice.AccessToken)
	h.clock.Advance(accessTTL)
	resp, s := h.open("ticket="+tk, nil)
	wantRefused(t, resp, s, errs.TokenExpired)
}

func TestATicketStreamEndsWhenItsTokenExpires(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	s := h.connect("", nil, "ticket="+h.ticket(alice.AccessToken))
	s.next()
	h.clock.Advance(accessTTL)
	if ev := s.nextEvent(); ev.Event != "token_expired" {
		t.Fatalf("event %+v, want token_expired", ev)
	}
	s.ended()
}

func TestATicketOfAnEndedSessionIsRefused(t *testing.T) {
	h := newHarness(t)
	h.start()
	alice := h.signup("alice")
	tk := h.ticket(alice.AccessToken)
	if w := h.do(req{method: "POST", path: "/v1/auth/logout", body: `{"refresh_token":"` + alice.RefreshToken + `"}`}); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", w.Code)
	}
	resp, s := h.open("ticket="+tk, nil)
	wantRefused(t, resp, s, errs.TokenInvalid)
}

func TestMalformedAndUnknownTicketsAreRefused(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, q := range []string{"ticket=short", "ticket=ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ticket=a&ticket=b"} {
		resp, s := h.open(q, nil)
		wantRefused(t, resp, s, errs.TokenInvalid)
	}
}

func TestATicketNeedsAValidAccessToken(t *testing.T) {
	h := newHarness(t)
	w := h.do(req{method: "POST", path: "/v1/events/ticket", token: tokenExpired})
	wantProblem(t, w, http.StatusUnauthorized, errs.TokenExpired)
}

func TestStreamRoutesAnswer503WithoutTheirDependencies(t *testing.T) {
	g, _ := newGateway(t)
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/events"}, {"POST", "/v1/events/ticket"}} {
		w := do(t, g.Handler(), tc.method, tc.path)
		if p := decodeProblem(t, w); w.Code != http.StatusServiceUnavailable || p.Code != string(errs.Unavailable) {
			t.Errorf("%s %s: %d %+v", tc.method, tc.path, w.Code, p)
		}
	}
}
