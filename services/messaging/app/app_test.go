package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/messaging/adapters/storetest"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// clock moves one millisecond each time it is read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

type env struct {
	app    *app.Application
	outbox *outboxtest.Outbox
	clock  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, ob, _ := storetest.OpenSQLite(t)
	e := &env{outbox: ob, clock: &clock{now: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}}
	var err error
	e.app, err = app.New(app.Config{Now: e.clock.Now}, app.Deps{Store: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func user() string { return storetest.NewUserID() }

func (e *env) conversation(t *testing.T, caller string, others ...string) domain.Conversation {
	t.Helper()
	r, err := e.app.CreateConversation.Handle(t.Context(), app.CreateConversation{CallerID: caller, ParticipantIDs: others})
	if err != nil {
		t.Fatalf("create conversation: %v", err)
	}
	return r.Value
}

func (e *env) send(t *testing.T, caller, conv, text string) app.Created[domain.Message] {
	t.Helper()
	r, err := e.app.SendMessage.Handle(t.Context(), app.SendMessage{CallerID: caller, ConversationID: conv, Text: text, ClientMsgID: text})
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return r
}

func (e *env) events(t *testing.T) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for _, ev := range e.outbox.Events(t) {
		if ev.Topic != eventsv1.TopicMessages {
			t.Errorf("event %s on topic %q", ev.Envelope.Type, ev.Topic)
		}
		out = append(out, ev.Envelope)
	}
	return out
}

// wantErr asserts that err is an *errs.Error with code and, if given, exactly these field
// pointers.
func wantErr(t *testing.T, err error, code errs.Code, pointers ...string) {
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
	if !slices.Equal(got, pointers) {
		t.Fatalf("field pointers %v, want %v", got, pointers)
	}
}

func TestNewRefusesAMissingStore(t *testing.T) {
	if _, err := app.New(app.Config{}, app.Deps{}, nil); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestSendingStoresTrimmedTextAtTheClocksTimeAndEmitsMessageSentKeyedByTheConversation(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := user(), user(), user()
	c := e.conversation(t, alice, bob, carol)
	r, err := e.app.SendMessage.Handle(t.Context(), app.SendMessage{CallerID: bob, ConversationID: c.ID, Text: "  hello ✌️\n ", ClientMsgID: "k-1"})
	if err != nil || !r.Created {
		t.Fatalf("send: %+v, %v", r, err)
	}
	m := r.Value
	if at, ok := domain.IDTime(m.ID); !ok || !at.Equal(m.CreatedAt) || m.CreatedAt.Before(c.CreatedAt) || m.Text != "hello ✌️" ||
		m.SenderID != bob || m.ConversationID != c.ID || m.ClientMsgID != "k-1" {
		t.Fatalf("message %+v (id time %v)", m, at)
	}
	evs := e.events(t)
	if len(evs) != 1 || evs[0].Type != eventsv1.MessageSent || evs[0].AggregateID != c.ID || evs[0].Producer != app.Producer {
		t.Fatalf("events %+v", evs)
	}
	var p eventsv1.MessageSentPayload
	if err := evs[0].DecodePayload(&p); err != nil || p.MessageID != m.ID || p.SenderID != bob || p.Text != m.Text ||
		!slices.Equal(p.ParticipantIDs, c.ParticipantIDs) || !p.SentAt.Equal(m.CreatedAt) || p.ClientMsgID != "k-1" {
		t.Errorf("payload %+v, %v", p, err)
	}

	again, err := e.app.SendMessage.Handle(t.Context(), app.SendMessage{CallerID: bob, ConversationID: c.ID, Text: "other", ClientMsgID: "k-1"})
	if err != nil || again.Created || again.Value != m {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if n := len(e.events(t)); n != 1 {
		t.Errorf("%d events after an idempotent retry, want 1", n)
	}
}

func TestIDsOfOneProcessFollowCreationOrderWhenTheClockStandsStill(t *testing.T) {
	st, _, _ := storetest.OpenSQLite(t)
	still := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := app.New(app.Config{Now: func() time.Time { return still }}, app.Deps{Store: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := user(), user()
	r, err := a.CreateConversation.Handle(t.Context(), app.CreateConversation{CallerID: alice, ParticipantIDs: []string{bob}})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i := range 20 {
		m, err := a.SendMessage.Handle(t.Context(), app.SendMessage{CallerID: alice, ConversationID: r.Value.ID, Text: "x", ClientMsgID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m.Value.ID)
	}
	p, err := a.ListMessages.Handle(t.Context(), app.ListMessages{CallerID: bob, ConversationID: r.Value.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		got[len(got)-1-i] = m.ID
	}
	if !slices.Equal(got, sent) {
		t.Errorf("listed (oldest first) %v\nsent %v", got, sent)
	}
}

func TestMalformedRequestsAreValidationErrorsWithFieldPointers(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob := user(), user()
	c := e.conversation(t, alice, bob)
	m := e.send(t, alice, c.ID, "hi").Value

	_, err := e.app.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: "alice", ParticipantIDs: []string{"bob"}})
	wantErr(t, err, errs.ValidationFailed, "/caller_id", "/participant_ids")
	_, err = e.app.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: alice})
	wantErr(t, err, errs.ValidationFailed, "/participant_ids")
	fifty := make([]string, 50)
	for i := range fifty {
		fifty[i] = user()
	}
	_, err = e.app.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: alice, ParticipantIDs: fifty})
	wantErr(t, err, errs.ValidationFailed, "/participant_ids")
	if r, err := e.app.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: alice, ParticipantIDs: fifty[:49]}); err != nil || len(r.Value.ParticipantIDs) != 50 {
		t.Errorf("a group of 50: %v", err)
	}

	_, err = e.app.SendMessage.Handle(ctx, app.SendMessage{CallerID: alice, ConversationID: c.ID, Text: " ", ClientMsgID: ""})
	wantErr(t, err, errs.ValidationFailed, "/text", "/client_msg_id")
	_, err = e.app.SendMessage.Handle(ctx, app.SendMessage{CallerID: alice, ConversationID: c.ID, Text: strings.Repeat("y", 4001), ClientMsgID: strings.Repeat("k", 65)})
	wantErr(t, err, errs.ValidationFailed, "/text", "/client_msg_id")
	if _, err := e.app.SendMessage.Handle(ctx, app.SendMessage{CallerID: alice, ConversationID: c.ID, Text: strings.Repeat("😀", 4000), ClientMsgID: "long"}); err != nil {
		t.Errorf("4000 characters: %v", err)
	}
	_, err = e.app.ListMessages.Handle(ctx, app.ListMessages{CallerID: alice, ConversationID: c.ID, Cursor: "%%", Limit: 101})
	wantErr(t, err, errs.ValidationFailed, "/limit", "/cursor")
	_, err = e.app.ListConversations.Handle(ctx, app.ListConversations{CallerID: "x", Cursor: "bogus", Limit: -1})
	wantErr(t, err, errs.ValidationFailed, "/caller_id", "/limit", "/cursor")
	_, err = e.app.MarkRead.Handle(ctx, app.MarkRead{CallerID: alice, ConversationID: c.ID, UpToMessageID: "latest"})
	wantErr(t, err, errs.ValidationFailed, "/up_to_message_id")
	if _, err := e.app.MarkRead.Handle(ctx, app.MarkRead{CallerID: bob, ConversationID: c.ID, UpToMessageID: m.ID}); err != nil {
		t.Errorf("mark read: %v", err)
	}
}

// For anyone but its participants, a conversation does not exist: the same not_found as for
// an unknown or malformed id, for every use case.
func TestOutsidersGetNotFoundExactlyAsForAnUnknownConversation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	alice, bob, eve := user(), user(), user()
	c := e.conversation(t, alice, bob)
	m := e.send(t, alice, c.ID, "private").Value
	calls := map[string]func(id string) error{
		"send": func(id string) error {
			_, err := e.app.SendMessage.Handle(ctx, app.SendMessage{CallerID: eve, ConversationID: id, Text: "hi", ClientMsgID: "k"})
			return err
		},
		"list": func(id string) error {
			_, err := e.app.ListMessages.Handle(ctx, app.ListMessages{CallerID: eve, ConversationID: id})
			return err
		},
		"mark read": func(id string) error {
			_, err := e.app.MarkRead.Handle(ctx, app.MarkRead{CallerID: eve, ConversationID: id, UpToMessageID: m.ID})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			var answers []string
			for _, id := range []string{c.ID, user(), "not-an-id"} {
				err := call(id)
				wantErr(t, err, errs.NotFound)
				answers = append(answers, err.(*errs.Error).Message)
			}
			if answers[0] != answers[1] || answers[1] != answers[2] {
				t.Errorf("answers differ, telling which conversation exists: %q", answers)
			}
		})
	}
	p, err := e.app.ListConversations.Handle(ctx, app.ListConversations{CallerID: eve})
	if err != nil || len(p.Conversations) != 0 {
		t.Errorf("the outsider lists %+v, %v", p, err)
	}
	_, err = e.app.MarkRead.Handle(ctx, app.MarkRead{CallerID: bob, ConversationID: c.ID, UpToMessageID: user()})
	wantErr(t, err, errs.NotFound)
}

func TestConversationsAndHistoryPageThroughOpaqueCursors(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	me := user()
	var convs []string
	for range 5 {
		convs = append(convs, e.conversation(t, me, user()).ID)
	}
	for i := range 7 {
		e.send(t, me, convs[1], fmt.Sprintf("m%d", i))
	}
	var listed []string
	cursor := ""
	for {
		p, err := e.app.ListConversations.Handle(ctx, app.ListConversations{CallerID: me, Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Conversations {
			listed = append(listed, c.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if want := []string{convs[1], convs[4], convs[3], convs[2], convs[0]}; !slices.Equal(listed, want) {
		t.Fatalf("conversations %v, want %v", listed, want)
	}
	var texts []string
	cursor = ""
	for {
		p, err := e.app.ListMessages.Handle(ctx, app.ListMessages{CallerID: me, ConversationID: convs[1], Cursor: cursor, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			texts = append(texts, m.Text)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if want := []string{"m6", "m5", "m4", "m3", "m2", "m1", "m0"}; !slices.Equal(texts, want) {
		t.Fatalf("history %v, want %v", texts, want)
	}
}

func TestCreatingAOneToOneConversationTwiceReturnsTheSameOne(t *testing.T) {
	e := newEnv(t)
	alice, bob := user(), user()
	first, err := e.app.CreateConversation.Handle(t.Context(), app.CreateConversation{CallerID: alice, ParticipantIDs: []string{bob, alice}})
	if err != nil || !first.Created {
		t.Fatalf("first: %+v, %v", first, err)
	}
	second, err := e.app.CreateConversation.Handle(t.Context(), app.CreateConversation{CallerID: bob, ParticipantIDs: []string{alice}})
	if err != nil || second.Created || second.Value.ID != first.Value.ID {
		t.Fatalf("second: %+v, %v; want %s", second, err, first.Value.ID)
	}
}

// failingStore fails sends with a timeout wrapped by the store, and lists with a driver error.
type failingStore struct{ app.Store }

func (failingStore) ListMessages(context.Context, string, string, domain.MessageCursor, int) (domain.MessagePage, error) {
	return domain.MessagePage{}, errors.New("connection reset by peer")
}

func (failingStore) SendMessage(context.Context, domain.Message, app.EventFunc) (domain.Message, bool, error) {
	return domain.Message{}, false, fmt.Errorf("store: %w", context.DeadlineExceeded)
}

func TestStoreFailuresBecomeInternalErrorsOrKeepTheMeaningOfContextErrors(t *testing.T) {
	a, err := app.New(app.Config{}, app.Deps{Store: failingStore{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.SendMessage.Handle(t.Context(), app.SendMessage{CallerID: user(), ConversationID: user(), Text: "x", ClientMsgID: "k"})
	wantErr(t, err, errs.DeadlineExceeded)
	_, err = a.ListMessages.Handle(t.Context(), app.ListMessages{CallerID: user(), ConversationID: user()})
	wantErr(t, err, errs.Internal)
	if strings.Contains(err.(*errs.Error).Message, "connection reset") {
		t.Errorf("the client-facing message leaks the cause: %q", err.(*errs.Error).Message)
	}
	if app.CodeOf(domain.Kind(99)) != errs.Internal {
		t.Error("an unknown kind does not map to internal")
	}
}
