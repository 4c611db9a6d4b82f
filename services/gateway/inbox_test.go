package gateway_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

type notification struct {
	Seq       int64          `json:"seq"`
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt string         `json:"created_at"`
	Read      bool           `json:"read"`
	Data      map[string]any `json:"data"`
}

func seqsOf(items []notification) []int64 {
	var out []int64
	for _, n := range items {
		out = append(out, n.Seq)
	}
	return out
}

func TestNotificationsAreListedNewestFirstAsTheStreamShowsThem(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	stored := h.inbox.add(alice.User.ID, 3)
	w := h.do(req{method: "GET", path: "/v1/notifications?limit=2", token: alice.AccessToken})
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	p1 := decodeJSON[listOf[notification]](t, w)
	if !slices.Equal(seqsOf(p1.Items), []int64{3, 2}) || p1.NextCursor == nil {
		t.Fatalf("page 1 %+v", p1)
	}
	n := p1.Items[0]
	if n.ID != stored[2].ID || n.Type != "post.liked" || n.Data["n"] != 3.0 || n.CreatedAt != h.clock.Now().UTC().Format(time.RFC3339) {
		t.Errorf("notification %+v", n)
	}
	p2 := decodeJSON[listOf[notification]](t, h.do(req{method: "GET", path: "/v1/notifications?cursor=" + *p1.NextCursor, token: alice.AccessToken}))
	if !slices.Equal(seqsOf(p2.Items), []int64{1}) || p2.NextCursor != nil {
		t.Fatalf("page 2 %+v", p2)
	}
}

func TestReadingMovesTheUnreadCount(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	h.inbox.add(alice.User.ID, 3)
	type count struct {
		Count   int64 `json:"count"`
		LastSeq int64 `json:"last_seq"`
	}
	if got := decodeJSON[count](t, h.do(req{method: "GET", path: "/v1/notifications/unread_count", token: alice.AccessToken})); got != (count{3, 3}) {
		t.Fatalf("unread %+v", got)
	}
	if w := h.do(req{method: "POST", path: "/v1/notifications/read", token: alice.AccessToken, body: `{"up_to_seq":2}`}); w.Code != http.StatusNoContent {
		t.Fatalf("read: %d %s", w.Code, w.Body)
	}
	if got := decodeJSON[count](t, h.do(req{method: "GET", path: "/v1/notifications/unread_count", token: alice.AccessToken})); got != (count{1, 3}) {
		t.Fatalf("unread after reading %+v", got)
	}
	list := decodeJSON[listOf[notification]](t, h.do(req{method: "GET", path: "/v1/notifications", token: alice.AccessToken}))
	if list.Items[0].Read || !list.Items[1].Read || !list.Items[2].Read {
		t.Errorf("read flags %+v", list.Items)
	}
}

func TestInvalidReadMarkersAreRejectedAtTheEdge(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	for _, tc := range []struct{ body, pointer string }{
		{`{}`, "/up_to_seq"},
		{`{"up_to_seq":-1}`, "/up_to_seq"},
		{`{"up_to_seq":"2"}`, "/up_to_seq"},
		{`{"up_to_seq":1.5}`, "/up_to_seq"},
		{`{"up_to_seq":1,"all":true}`, "/all"},
	} {
		p := wantProblem(t, h.do(req{method: "POST", path: "/v1/notifications/read", token: alice.AccessToken, body: tc.body}), http.StatusBadRequest, errs.ValidationFailed)
		if !slices.Equal(pointers(p), []string{tc.pointer}) {
			t.Errorf("%s: pointers %q, want %q", tc.body, pointers(p), tc.pointer)
		}
	}
	if n := h.inbox.callCount("MarkRead"); n != 0 {
		t.Errorf("MarkRead called %d times", n)
	}
}

func TestTheInboxNeedsAToken(t *testing.T) {
	h := newHarness(t)
	for _, r := range []req{
		{method: "GET", path: "/v1/notifications"},
		{method: "GET", path: "/v1/notifications/unread_count"},
		{method: "POST", path: "/v1/notifications/read", body: `{"up_to_seq":1}`},
		{method: "GET", path: "/v1/me/sessions"},
		{method: "GET", path: "/v1/users/alice/presence"},
	} {
		wantProblem(t, h.do(r), http.StatusUnauthorized, errs.TokenMissing)
	}
}

func TestPresenceSaysWhetherAUserIsOnlineAndWhenLastSeen(t *testing.T) {
	h := newHarness(t)
	alice, bob, _ := h.signup("alice"), h.signup("bob"), h.signup("carol")
	seen := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	h.presenceSvc.set(bob.User.ID, &presencev1.GetPresenceResponse{Online: true, LastSeenAt: timestamppb.New(seen)})
	type presence struct {
		Online     bool    `json:"online"`
		LastSeenAt *string `json:"last_seen_at"`
	}
	got := decodeJSON[presence](t, h.do(req{method: "GET", path: "/v1/users/Bob/presence", token: alice.AccessToken}))
	if !got.Online || got.LastSeenAt == nil || *got.LastSeenAt != "2030-01-01T12:00:00Z" {
		t.Errorf("bob %+v", got)
	}
	never := decodeJSON[presence](t, h.do(req{method: "GET", path: "/v1/users/carol/presence", token: alice.AccessToken}))
	if never.Online || never.LastSeenAt != nil {
		t.Errorf("carol %+v", never)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/users/nobody/presence", token: alice.AccessToken}), http.StatusNotFound, errs.NotFound)
}

func TestSessionsListTheCallersConnections(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	h.presenceSvc.set(alice.User.ID, &presencev1.GetPresenceResponse{Online: true},
		&presencev1.Session{ConnectionId: "c2", InstanceId: "gw-1", ConnectedAt: timestamppb.New(at.Add(time.Hour))},
		&presencev1.Session{ConnectionId: "c1", InstanceId: "gw-2", ConnectedAt: timestamppb.New(at), DisconnectedAt: timestamppb.New(at.Add(time.Minute))},
	)
	type session struct {
		ConnectionID   string  `json:"connection_id"`
		InstanceID     string  `json:"instance_id"`
		ConnectedAt    string  `json:"connected_at"`
		DisconnectedAt *string `json:"disconnected_at"`
	}
	w := h.do(req{method: "GET", path: "/v1/me/sessions?limit=1", token: alice.AccessToken})
	p1 := decodeJSON[listOf[session]](t, w)
	if len(p1.Items) != 1 || p1.Items[0].ConnectionID != "c2" || p1.Items[0].DisconnectedAt != nil || p1.NextCursor == nil {
		t.Fatalf("page 1 %+v", p1)
	}
	p2 := decodeJSON[listOf[session]](t, h.do(req{method: "GET", path: "/v1/me/sessions?cursor=" + *p1.NextCursor, token: alice.AccessToken}))
	if len(p2.Items) != 1 || p2.Items[0].DisconnectedAt == nil || *p2.Items[0].DisconnectedAt != "2030-01-01T12:01:00Z" || p2.NextCursor != nil {
		t.Fatalf("page 2 %+v", p2)
	}
}
