package gateway_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway"
)

type sender struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type message struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Sender         sender `json:"sender"`
	Text           string `json:"text"`
	ClientMsgID    string `json:"client_msg_id"`
	CreatedAt      string `json:"created_at"`
}

type conversation struct {
	ID             string   `json:"id"`
	Participants   []author `json:"participants"`
	LastMessage    *message `json:"last_message"`
	UnreadCount    int64    `json:"unread_count"`
	CreatedAt      string   `json:"created_at"`
	LastActivityAt string   `json:"last_activity_at"`
}

// addUser creates an account straight in the fake user-service (no sign-up, so no rate
// limit) and returns its id.
func (f *fakeUsers) addUser(username string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next("u")
	name := strings.ToLower(username)
	f.users[id] = &userv1.User{Id: id, Username: name, DisplayName: username, Email: name + "@example.com", CreatedAt: timestamppb.New(f.clock.Now())}
	f.byName[name], f.byEmail[name+"@example.com"] = id, id
	return id
}

// startConversation creates a conversation as the owner of token with the usernames.
func (h *harness) startConversation(token string, usernames ...string) (conversation, int) {
	h.t.Helper()
	body, _ := json.Marshal(map[string][]string{"participants": usernames})
	w := h.do(req{method: "POST", path: "/v1/conversations", token: token, body: string(body)})
	if w.Code != http.StatusCreated && w.Code != http.StatusOK {
		h.t.Fatalf("start conversation with %q: %d %s", usernames, w.Code, w.Body)
	}
	return decodeJSON[conversation](h.t, w), w.Code
}

// send sends text to a conversation as the owner of token.
func (h *harness) send(token, convID, text, clientMsgID string) message {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text, "client_msg_id": clientMsgID})
	w := h.do(req{method: "POST", path: "/v1/conversations/" + convID + "/messages", token: token, body: string(body)})
	if w.Code != http.StatusCreated {
		h.t.Fatalf("send %q: %d %s", text, w.Code, w.Body)
	}
	return decodeJSON[message](h.t, w)
}

func usernames(as []author) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Username)
	}
	return out
}

func TestAOneToOneConversationIsCreatedOnceThenFound(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("Alice"), h.signup("Bob")

	c, status := h.startConversation(alice.AccessToken, "BOB")
	if status != http.StatusCreated {
		t.Fatalf("first start: %d, want 201", status)
	}
	now := h.clock.Now().UTC().Format(time.RFC3339)
	want := conversation{
		ID: c.ID,
		Participants: []author{
			{ID: alice.User.ID, Username: "alice", DisplayName: "Alice"},
			{ID: bob.User.ID, Username: "bob", DisplayName: "Bob"},
		},
		CreatedAt: now, LastActivityAt: now,
	}
	if !equalJSON(t, c, want) {
		t.Errorf("conversation %+v,\nwant %+v", c, want)
	}
	// messaging-service is asked with ids, the caller left to it.
	if got := h.messaging.creates[0].GetParticipantIds(); !slices.Equal(got, []string{bob.User.ID}) {
		t.Errorf("messaging-service asked for participants %q, want bob's id only", got)
	}

	// From either side, and naming yourself too, it is the same conversation.
	again, status := h.startConversation(bob.AccessToken, "alice", "bob")
	if status != http.StatusOK || again.ID != c.ID {
		t.Fatalf("second start: %d %q, want 200 with %q", status, again.ID, c.ID)
	}
}

func TestAGroupLooksEachUsernameUpOnceAndCountsTheCaller(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	h.signup("bob")
	h.signup("carol")
	before := h.users.callCount("GetUser")
	c, status := h.startConversation(alice.AccessToken, "bob", "Carol", "BOB", "carol")
	if status != http.StatusCreated {
		t.Fatalf("status %d", status)
	}
	if got := usernames(c.Participants); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("participants %q", got)
	}
	if n := h.users.callCount("GetUser") - before; n != 2 {
		t.Errorf("%d GetUser calls for 2 distinct usernames", n)
	}
}

func TestInvalidConversationRequestsAreRejectedAtTheEdge(t *testing.T) {
	fifty := make([]string, 51)
	for i := range fifty {
		fifty[i] = `"user` + strconv.Itoa(i) + `"`
	}
	cases := []struct {
		name, body string
		pointers   []string
	}{
		{"no participants member", `{}`, []string{"/participants"}},
		{"null participants", `{"participants":null}`, []string{"/participants"}},
		{"empty participants", `{"participants":[]}`, []string{"/participants"}},
		{"51 entries", `{"participants":[` + strings.Join(fifty, ",") + `]}`, []string{"/participants"}},
		{"malformed usernames", `{"participants":["bob","no spaces","x"]}`, []string{"/participants/1", "/participants/2"}},
		{"wrong type", `{"participants":"bob"}`, []string{"/participants"}},
		{"wrong element type", `{"participants":["bob",7]}`, []string{"/participants/1"}},
		{"unknown member", `{"participants":["bob"],"title":"x"}`, []string{"/title"}},
		{"only yourself", `{"participants":["alice","ALICE"]}`, []string{"/participants"}},
		{"usernames that name nobody", `{"participants":["bob","nobody","alice","ghost"]}`, []string{"/participants/1", "/participants/3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice := h.signup("alice")
			h.signup("bob")
			got := wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations", token: alice.AccessToken, body: tc.body}),
				http.StatusBadRequest, errs.ValidationFailed)
			if !slices.Equal(pointers(got), tc.pointers) {
				t.Errorf("pointers %q, want %q", pointers(got), tc.pointers)
			}
			if n := h.messaging.callCount("CreateConversation"); n != 0 {
				t.Errorf("messaging-service called %d times", n)
			}
		})
	}
}

func TestAConversationHoldsAtMost49OthersBesidesTheCaller(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	var names []string
	for i := range 50 {
		name := "peer" + strconv.Itoa(i)
		h.users.addUser(name)
		names = append(names, name)
	}
	// 50 others: one too many.
	body, _ := json.Marshal(map[string][]string{"participants": names})
	got := wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations", token: alice.AccessToken, body: string(body)}),
		http.StatusBadRequest, errs.ValidationFailed)
	if !slices.Equal(pointers(got), []string{"/participants"}) {
		t.Errorf("pointers %q", pointers(got))
	}
	if n := h.messaging.callCount("CreateConversation"); n != 0 {
		t.Errorf("messaging-service called %d times", n)
	}
	// 49 others and yourself: the largest group.
	c, status := h.startConversation(alice.AccessToken, append(names[:49], "alice")...)
	if status != http.StatusCreated || len(c.Participants) != 50 {
		t.Fatalf("status %d, %d participants; want 201 with 50", status, len(c.Participants))
	}
}

func TestAFailedUsernameLookupIsNotTakenForAnUnknownUser(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	h.signup("bob")
	h.users.setFail("GetUser", errs.New(errs.Unavailable, "user-service is down"))
	wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations", token: alice.AccessToken, body: `{"participants":["bob"]}`}),
		http.StatusServiceUnavailable, errs.Unavailable)
}

func TestSendingAMessageAnswers201AndARetryTheOriginalWith200(t *testing.T) {
	h := newHarness(t)
	alice, _ := h.signup("alice"), h.signup("bob")
	c, _ := h.startConversation(alice.AccessToken, "bob")

	w := h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/messages", token: alice.AccessToken,
		body: `{"text":"  hi bob  ","client_msg_id":"web-1_A"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("send: %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	m := decodeJSON[message](t, w)
	want := message{
		ID: m.ID, ConversationID: c.ID, Sender: sender{ID: alice.User.ID, Username: "alice"},
		Text: "hi bob", ClientMsgID: "web-1_A", CreatedAt: h.clock.Now().UTC().Format(time.RFC3339),
	}
	if m != want || m.ID == "" {
		t.Errorf("message %+v,\nwant %+v", m, want)
	}

	// The answer was lost; the client retries (its text may even differ: the first one wins).
	h.clock.Advance(time.Minute)
	w = h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/messages", token: alice.AccessToken,
		body: `{"text":"hi bob!","client_msg_id":"web-1_A"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("retry: %d %s, want 200", w.Code, w.Body)
	}
	if again := decodeJSON[message](t, w); again != m {
		t.Errorf("retry answered %+v, want the original %+v", again, m)
	}
	list := decodeJSON[listOf[message]](t, h.do(req{method: "GET", path: "/v1/conversations/" + c.ID + "/messages", token: alice.AccessToken}))
	if len(list.Items) != 1 {
		t.Errorf("%d messages after a retry, want 1", len(list.Items))
	}
}

func TestInvalidMessagesAreRejectedAtTheEdge(t *testing.T) {
	cases := []struct {
		name, body string
		pointers   []string
	}{
		{"empty object", `{}`, []string{"/text", "/client_msg_id"}},
		{"blank text", `{"text":" \n\t ","client_msg_id":"a"}`, []string{"/text"}},
		{"text of 4001 characters", `{"text":"` + strings.Repeat("é", 4001) + `","client_msg_id":"a"}`, []string{"/text"}},
		{"client_msg_id too long", `{"text":"hi","client_msg_id":"` + strings.Repeat("x", 65) + `"}`, []string{"/client_msg_id"}},
		{"client_msg_id with other characters", `{"text":"hi","client_msg_id":"a.b"}`, []string{"/client_msg_id"}},
		{"wrong type", `{"text":["hi"],"client_msg_id":"a"}`, []string{"/text"}},
		{"unknown member", `{"text":"hi","client_msg_id":"a","to":"bob"}`, []string{"/to"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice, _ := h.signup("alice"), h.signup("bob")
			c, _ := h.startConversation(alice.AccessToken, "bob")
			got := wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/messages", token: alice.AccessToken, body: tc.body}),
				http.StatusBadRequest, errs.ValidationFailed)
			if !slices.Equal(pointers(got), tc.pointers) {
				t.Errorf("pointers %q, want %q", pointers(got), tc.pointers)
			}
			if n := h.messaging.callCount("SendMessage"); n != 0 {
				t.Errorf("messaging-service called %d times", n)
			}
		})
	}
}

func TestTheLongestMessageFitsTheBodyLimitEvenFullyEscaped(t *testing.T) {
	h := newHarness(t)
	alice, _ := h.signup("alice"), h.signup("bob")
	c, _ := h.startConversation(alice.AccessToken, "bob")
	// 4000 characters outside the BMP, each written as a surrogate pair of escapes (48 KB),
	// and white space around them, which does not count.
	text := strings.Repeat("𝄞", 4000)
	body := `{"text":" \n` + strings.Repeat(`\ud834\udd1e`, 4000) + `\t ","client_msg_id":"big"}`
	w := h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/messages", token: alice.AccessToken, body: body})
	if w.Code != http.StatusCreated {
		t.Fatalf("send: %d %.300s", w.Code, w.Body)
	}
	if m := decodeJSON[message](t, w); m.Text != text {
		t.Errorf("text of %d characters came back", len([]rune(m.Text)))
	}
}

func TestAConversationIsNotFoundForAnyoneButItsParticipants(t *testing.T) {
	h := newHarness(t)
	alice, bob, carol := h.signup("alice"), h.signup("bob"), h.signup("carol")
	c, _ := h.startConversation(alice.AccessToken, "bob")
	m := h.send(bob.AccessToken, c.ID, "just us", "b1")

	for _, r := range []req{
		{method: "POST", path: "/v1/conversations/" + c.ID + "/messages", body: `{"text":"let me in","client_msg_id":"c1"}`},
		{method: "GET", path: "/v1/conversations/" + c.ID + "/messages"},
		{method: "POST", path: "/v1/conversations/" + c.ID + "/read", body: `{"up_to_message_id":"` + m.ID + `"}`},
	} {
		r.token = carol.AccessToken
		wantProblem(t, h.do(r), http.StatusNotFound, errs.NotFound)
	}
	if n := h.messaging.callCount("SendMessage") + h.messaging.callCount("ListMessages") + h.messaging.callCount("MarkRead"); n != 4 {
		t.Errorf("messaging-service called %d times, want 4: the gateway must ask it, not guess", n)
	}
	if got := decodeJSON[listOf[conversation]](t, h.do(req{method: "GET", path: "/v1/conversations", token: carol.AccessToken})); len(got.Items) != 0 {
		t.Errorf("carol lists %+v", got.Items)
	}
}

func TestAConversationIDNoConversationCanHaveIsNotFoundWithoutAskingMessaging(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	for _, id := range []string{"a.b", strings.Repeat("x", 65), "%C3%A9"} {
		wantProblem(t, h.do(req{method: "GET", path: "/v1/conversations/" + id + "/messages", token: alice.AccessToken}), http.StatusNotFound, errs.NotFound)
		wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations/" + id + "/messages", token: alice.AccessToken,
			body: `{"text":"hi","client_msg_id":"a"}`}), http.StatusNotFound, errs.NotFound)
	}
	if n := h.messaging.callCount("ListMessages") + h.messaging.callCount("SendMessage"); n != 0 {
		t.Errorf("messaging-service called %d times", n)
	}
}

func TestMessagesAreListedNewestFirstWithOneSenderLookupPerPage(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("alice"), h.signup("bob")
	c, _ := h.startConversation(alice.AccessToken, "bob")
	h.send(alice.AccessToken, c.ID, "one", "a1")
	h.send(bob.AccessToken, c.ID, "two", "b1")
	h.send(alice.AccessToken, c.ID, "three", "a2")

	before := h.users.callCount("GetUsers")
	w := h.do(req{method: "GET", path: "/v1/conversations/" + c.ID + "/messages?limit=2", token: bob.AccessToken})
	if w.Code != http.StatusOK {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	p1 := decodeJSON[listOf[message]](t, w)
	if len(p1.Items) != 2 || p1.Items[0].Text != "three" || p1.Items[0].Sender.Username != "alice" ||
		p1.Items[1].Text != "two" || p1.Items[1].Sender.Username != "bob" || p1.NextCursor == nil {
		t.Fatalf("page 1 %+v", p1)
	}
	p2 := decodeJSON[listOf[message]](t, h.do(req{method: "GET", path: "/v1/conversations/" + c.ID + "/messages?cursor=" + *p1.NextCursor, token: bob.AccessToken}))
	if len(p2.Items) != 1 || p2.Items[0].Text != "one" || p2.NextCursor != nil {
		t.Fatalf("page 2 %+v", p2)
	}
	if n := h.users.callCount("GetUsers") - before; n != 2 {
		t.Errorf("%d GetUsers calls for 2 pages, want one per page", n)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/conversations/" + c.ID + "/messages?limit=101", token: bob.AccessToken}),
		http.StatusBadRequest, errs.ValidationFailed)
}

func TestConversationsAreListedByActivityWithEveryParticipantFromOneLookup(t *testing.T) {
	h := newHarness(t)
	alice, bob, carol := h.signup("alice"), h.signup("bob"), h.signup("carol")
	h.signup("dave")
	withBob, _ := h.startConversation(alice.AccessToken, "bob")
	h.clock.Advance(time.Second)
	group, _ := h.startConversation(carol.AccessToken, "alice", "bob", "dave")
	h.clock.Advance(time.Second)
	withCarol, _ := h.startConversation(alice.AccessToken, "carol")
	h.clock.Advance(time.Second)
	h.send(bob.AccessToken, withBob.ID, "hello?", "b1")
	h.clock.Advance(time.Second)
	h.send(bob.AccessToken, withBob.ID, "anyone?", "b2")

	before, beforeOne := h.users.callCount("GetUsers"), h.users.callCount("GetUser")
	w := h.do(req{method: "GET", path: "/v1/conversations?limit=2", token: alice.AccessToken})
	if w.Code != http.StatusOK {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "private, no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	p1 := decodeJSON[listOf[conversation]](t, w)
	if len(p1.Items) != 2 || p1.Items[0].ID != withBob.ID || p1.Items[1].ID != withCarol.ID || p1.NextCursor == nil {
		t.Fatalf("page 1 %+v", p1)
	}
	first := p1.Items[0]
	if first.UnreadCount != 2 || first.LastMessage == nil || first.LastMessage.Text != "anyone?" ||
		first.LastMessage.Sender != (sender{ID: bob.User.ID, Username: "bob"}) || first.LastActivityAt != h.clock.Now().UTC().Format(time.RFC3339) {
		t.Errorf("conversation with bob %+v (last message %+v)", first, first.LastMessage)
	}
	if p1.Items[1].LastMessage != nil || p1.Items[1].UnreadCount != 0 {
		t.Errorf("conversation with carol %+v", p1.Items[1])
	}
	p2 := decodeJSON[listOf[conversation]](t, h.do(req{method: "GET", path: "/v1/conversations?cursor=" + *p1.NextCursor, token: alice.AccessToken}))
	if len(p2.Items) != 1 || p2.Items[0].ID != group.ID || p2.NextCursor != nil {
		t.Fatalf("page 2 %+v", p2)
	}
	if got := usernames(p2.Items[0].Participants); !slices.Equal(got, []string{"carol", "alice", "bob", "dave"}) {
		t.Errorf("group participants %q", got)
	}
	if n := h.users.callCount("GetUsers") - before; n != 2 {
		t.Errorf("%d GetUsers calls for 2 pages, want one per page", n)
	}
	if n := h.users.callCount("GetUser") - beforeOne; n != 0 {
		t.Errorf("%d GetUser calls: participants must not be looked up one by one", n)
	}
}

func TestAParticipantWhoseAccountIsGoneShowsOnlyTheirID(t *testing.T) {
	h := newHarness(t)
	alice := h.signup("alice")
	ghost := h.users.addUser("ghost")
	c, _ := h.startConversation(alice.AccessToken, "ghost")
	h.users.mu.Lock()
	delete(h.users.users, ghost)
	h.users.mu.Unlock()
	got := decodeJSON[listOf[conversation]](t, h.do(req{method: "GET", path: "/v1/conversations", token: alice.AccessToken}))
	if len(got.Items) != 1 || got.Items[0].ID != c.ID || got.Items[0].Participants[1] != (author{ID: ghost}) {
		t.Fatalf("conversations %+v", got.Items)
	}
}

func TestMarkingAConversationReadMovesItsUnreadCount(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.signup("alice"), h.signup("bob")
	c, _ := h.startConversation(alice.AccessToken, "bob")
	m1 := h.send(bob.AccessToken, c.ID, "one", "b1")
	h.send(bob.AccessToken, c.ID, "two", "b2")
	unread := func() int64 {
		t.Helper()
		l := decodeJSON[listOf[conversation]](t, h.do(req{method: "GET", path: "/v1/conversations", token: alice.AccessToken}))
		return l.Items[0].UnreadCount
	}
	if n := unread(); n != 2 {
		t.Fatalf("unread %d, want 2", n)
	}
	if w := h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/read", token: alice.AccessToken,
		body: `{"up_to_message_id":"` + m1.ID + `"}`}); w.Code != http.StatusNoContent {
		t.Fatalf("read: %d %s", w.Code, w.Body)
	}
	if n := unread(); n != 1 {
		t.Errorf("unread %d after reading the first, want 1", n)
	}
	for body, ptr := range map[string]string{
		`{}`:                         "/up_to_message_id",
		`{"up_to_message_id":""}`:    "/up_to_message_id",
		`{"up_to_message_id":"a/b"}`: "/up_to_message_id",
		`{"up_to_message_id":7}`:     "/up_to_message_id",
		`{"up_to_seq":3}`:            "/up_to_seq",
	} {
		got := wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/read", token: alice.AccessToken, body: body}),
			http.StatusBadRequest, errs.ValidationFailed)
		if ps := pointers(got); !slices.Contains(ps, ptr) {
			t.Errorf("%s: pointers %q, want %s", body, ps, ptr)
		}
	}
	// A message that is not in the conversation: messaging-service's not_found, passed on.
	wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations/" + c.ID + "/read", token: alice.AccessToken,
		body: `{"up_to_message_id":"msg-999999"}`}), http.StatusNotFound, errs.NotFound)
}

func TestMessagingRoutesNeedAToken(t *testing.T) {
	h := newHarness(t)
	for _, r := range []req{
		{method: "POST", path: "/v1/conversations", body: `{"participants":["bob"]}`},
		{method: "GET", path: "/v1/conversations"},
		{method: "POST", path: "/v1/conversations/c1/messages", body: `{"text":"hi","client_msg_id":"a"}`},
		{method: "GET", path: "/v1/conversations/c1/messages"},
		{method: "POST", path: "/v1/conversations/c1/read", body: `{"up_to_message_id":"m1"}`},
	} {
		wantProblem(t, h.do(r), http.StatusUnauthorized, errs.TokenMissing)
		r.token = tokenExpired
		wantProblem(t, h.do(r), http.StatusUnauthorized, errs.TokenExpired)
	}
}

func TestMessagingRoutesAnswer503WithoutMessagingService(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.Messaging = nil })
	alice := h.signup("alice")
	wantProblem(t, h.do(req{method: "GET", path: "/v1/conversations", token: alice.AccessToken}), http.StatusServiceUnavailable, errs.Unavailable)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/conversations", token: alice.AccessToken, body: `{"participants":["bob"]}`}),
		http.StatusServiceUnavailable, errs.Unavailable)
}

// equalJSON compares two values by their JSON encodings.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}
