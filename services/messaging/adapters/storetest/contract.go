package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// Event is one event a store recorded for publishing (the test outbox's record type, so that
// the SQLite store's outbox serves as the harness's event source as it is).
type Event = outboxtest.Event

// Harness is one store under test.
type Harness struct {
	Store app.Store
	// Events returns the events the store recorded and nobody has published yet. Events of one
	// conversation come in the order they will be published.
	Events func(t testing.TB) []Event
	// BucketSize is the time span of the store's message partitions; 0 when it has none. The
	// suite places messages in several buckets, with empty ones between, from it.
	BucketSize time.Duration
}

// Run runs the store contract. open(t) must return a harness on a fresh, empty store for t,
// released when t ends.
func Run(t *testing.T, open func(t *testing.T) Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"ConversationReadsBackForItsParticipantsOnly", testCreateAndRead},
		{"OneToOneConversationIsUniquePerPairUnderConcurrentCreation", testDirectUnique},
		{"GroupsAreNewOnEveryCreation", testGroupsNew},
		{"SentMessageReadsBackWithItsEventAndBecomesTheLastActivity", testSendAndRead},
		{"RetriedSendReturnsTheFirstMessageAndEmitsNothing", testRetry},
		{"ConcurrentSendsWithOneClientMsgIDStoreOneMessageAndOneEvent", testConcurrentRetry},
		{"ClientMsgIDIsScopedToSenderAndConversation", testClientIDScope},
		{"NonParticipantSeesNothing", testOutsider},
		{"HistoryPagesNewestFirstAcrossBucketBoundariesExactlyOnce", testBuckets},
		{"PagingWhileMessagesArriveNeverRepeatsOrSkips", testPagingDuringSends},
		{"UnreadCountsFollowReadMarkersWhichNeverMoveBack", testUnread},
		{"UnreadCountStopsAtTheLimit", testUnreadLimit},
		{"ConversationsListByLastActivityNewestFirstAcrossPages", testListByActivity},
		{"ConcurrentSendsToOneConversationListItOnceAtItsNewestMessage", testConcurrentActivity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hn := open(t)
			h := &harness{Harness: hn, bucket: hn.BucketSize}
			if h.bucket == 0 {
				h.bucket = 24 * time.Hour
			}
			tc.fn(t, h)
		})
	}
}

// t0 is the base time of the tests, at a millisecond, as message ids carry time.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535000000, time.UTC)

type harness struct {
	Harness
	bucket time.Duration // BucketSize, or a day for a store without buckets
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// NewUserID returns a fresh user id. User ids come from user-service; the store takes any
// canonical UUID.
func NewUserID() string { return uuid.NewString() }

// IDAt returns a fresh UUIDv7 made at at, failing tb if none can be made.
func IDAt(tb testing.TB, at time.Time) string {
	tb.Helper()
	var g domain.IDGenerator // a fresh one: ids at the very time given, whatever came before
	id, err := g.New(at)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// conversation creates a conversation of creator and others at at.
func (h *harness) tryCreate(t *testing.T, at time.Time, creator string, others ...string) (domain.Conversation, bool, error) {
	t.Helper()
	ps, err := domain.Participants(creator, others)
	if err != nil {
		t.Fatal(err)
	}
	c := domain.Conversation{ID: IDAt(t, at), ParticipantIDs: ps, CreatedAt: at, LastActivityAt: at}
	return h.Store.CreateConversation(ctxFor(t), c, creator)
}

func (h *harness) create(t *testing.T, at time.Time, creator string, others ...string) domain.Conversation {
	t.Helper()
	c, _, err := h.tryCreate(t, at, creator, others...)
	if err != nil {
		t.Fatalf("create conversation: %v", err)
	}
	return c
}

// message builds a message of sender to conversation at at.
func message(t *testing.T, conv, sender, text, clientID string, at time.Time) domain.Message {
	t.Helper()
	id := IDAt(t, at)
	created, _ := domain.IDTime(id)
	return domain.Message{ID: id, ConversationID: conv, SenderID: sender, Text: text, ClientMsgID: clientID, CreatedAt: created}
}

func (h *harness) trySend(t *testing.T, m domain.Message) (domain.Message, bool, error) {
	t.Helper()
	return h.Store.SendMessage(ctxFor(t), m, app.MessageSentEvent)
}

// send sends text from sender at at with a fresh client id and fails t unless it is stored.
func (h *harness) send(t *testing.T, conv, sender, text string, at time.Time) domain.Message {
	t.Helper()
	m := message(t, conv, sender, text, "c-"+uuid.NewString(), at)
	got, created, err := h.trySend(t, m)
	if err != nil || !created || got != m {
		t.Fatalf("send %q: %+v, created %v, %v", text, got, created, err)
	}
	return got
}

func (h *harness) read(t *testing.T, conv, viewer string) domain.Conversation {
	t.Helper()
	c, err := h.Store.Conversation(ctxFor(t), conv, viewer)
	if err != nil {
		t.Fatalf("read conversation %s as %s: %v", conv, viewer, err)
	}
	return c
}

// history lists every message of conv as viewer, limit at a time, checking each page's size.
func (h *harness) history(t *testing.T, conv, viewer string, limit int) []domain.Message {
	t.Helper()
	var out []domain.Message
	var cursor domain.MessageCursor
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		p, err := h.Store.ListMessages(ctxFor(t), conv, viewer, cursor, limit)
		if err != nil {
			t.Fatalf("list messages: %v", err)
		}
		if len(p.Messages) > limit || (!p.Next.IsZero() && len(p.Messages) != limit) {
			t.Fatalf("a page of %d messages (limit %d), next %+v", len(p.Messages), limit, p.Next)
		}
		out = append(out, p.Messages...)
		if p.Next.IsZero() {
			return out
		}
		cursor = p.Next
	}
}

// conversations lists every conversation of viewer, limit at a time.
func (h *harness) conversations(t *testing.T, viewer string, limit int) []domain.Conversation {
	t.Helper()
	var out []domain.Conversation
	var cursor domain.ConversationCursor
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		p, err := h.Store.ListConversations(ctxFor(t), viewer, cursor, limit)
		if err != nil {
			t.Fatalf("list conversations: %v", err)
		}
		if len(p.Conversations) > limit || (!p.Next.IsZero() && len(p.Conversations) != limit) {
			t.Fatalf("a page of %d conversations (limit %d), next %+v", len(p.Conversations), limit, p.Next)
		}
		out = append(out, p.Conversations...)
		if p.Next.IsZero() {
			return out
		}
		cursor = p.Next
	}
}

// events returns the recorded message.sent events of conv, checking topic and key of each.
func (h *harness) events(t *testing.T, conv string) []eventsv1.MessageSentPayload {
	t.Helper()
	var out []eventsv1.MessageSentPayload
	for _, e := range h.Events(t) {
		if e.Envelope.AggregateID != conv {
			continue
		}
		if e.Topic != eventsv1.TopicMessages || e.Envelope.Type != eventsv1.MessageSent || e.Envelope.Producer != app.Producer {
			t.Errorf("event %s %s from %s on topic %q", e.Envelope.ID, e.Envelope.Type, e.Envelope.Producer, e.Topic)
		}
		var p eventsv1.MessageSentPayload
		if err := e.Envelope.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
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

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func messageID(m domain.Message) string           { return m.ID }
func conversationID(c domain.Conversation) string { return c.ID }

// newestFirst returns the ids of ms sorted newest first.
func newestFirst(ms []domain.Message) []string {
	out := ids(ms, messageID)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// ---------------------------------------------------------------------------- conversations

func testCreateAndRead(t *testing.T, h *harness) {
	alice, bob, carol := NewUserID(), NewUserID(), NewUserID()
	c, created, err := h.tryCreate(t, t0, alice, bob, carol, bob)
	if err != nil || !created {
		t.Fatalf("create: created %v, %v", created, err)
	}
	want := []string{alice, bob, carol}
	slices.Sort(want)
	if !slices.Equal(c.ParticipantIDs, want) || !c.CreatedAt.Equal(t0) || !c.LastActivityAt.Equal(t0) || c.LastMessage != nil || c.UnreadCount != 0 {
		t.Fatalf("created %+v", c)
	}
	for _, who := range []string{alice, bob, carol} {
		got := h.read(t, c.ID, who)
		if got.ID != c.ID || !slices.Equal(got.ParticipantIDs, want) || !got.CreatedAt.Equal(t0) ||
			!got.LastActivityAt.Equal(t0) || got.CreatedAt.Location() != time.UTC || got.LastMessage != nil || got.UnreadCount != 0 {
			t.Errorf("%s reads %+v", who, got)
		}
		if list := h.conversations(t, who, 10); !slices.Equal(ids(list, conversationID), []string{c.ID}) {
			t.Errorf("%s lists %v", who, ids(list, conversationID))
		}
	}
	for name, id := range map[string]string{"unknown id": IDAt(t, t0), "malformed id": "not-a-uuid", "empty id": ""} {
		if _, err := h.Store.Conversation(ctxFor(t), id, alice); !errors.Is(err, domain.ErrConversationNotFound) {
			t.Errorf("%s: %v, want ErrConversationNotFound", name, err)
		}
	}
}

func testDirectUnique(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	const n = 8
	got := make([]domain.Conversation, n)
	created := make([]bool, n)
	errs := parallel(n, func(i int) error {
		// Both ends create it, each naming the other.
		me, other := alice, bob
		if i%2 == 1 {
			me, other = bob, alice
		}
		var err error
		got[i], created[i], err = h.tryCreate(t, t0.Add(time.Duration(i)*time.Millisecond), me, other)
		return err
	})
	wins := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creation %d: %v", i, errs[i])
		}
		if created[i] {
			wins++
		}
		if got[i].ID != got[0].ID || len(got[i].ParticipantIDs) != 2 || !got[i].CreatedAt.Equal(got[0].CreatedAt) {
			t.Errorf("creation %d got %+v, creation 0 got %+v", i, got[i], got[0])
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent creations report created, want exactly 1", wins)
	}
	// Later, with messages: the same conversation, as it is now.
	m := h.send(t, got[0].ID, alice, "hi", t0.Add(time.Minute))
	again, created2, err := h.tryCreate(t, t0.Add(time.Hour), bob, alice)
	if err != nil || created2 || again.ID != got[0].ID || again.LastMessage == nil || *again.LastMessage != m || again.UnreadCount != 1 {
		t.Fatalf("creating again: %+v, created %v, %v", again, created2, err)
	}
	for _, who := range []string{alice, bob} {
		if list := h.conversations(t, who, 10); len(list) != 1 {
			t.Errorf("%s lists %d conversations, want the one", who, len(list))
		}
	}
}

func testGroupsNew(t *testing.T, h *harness) {
	alice, bob, carol := NewUserID(), NewUserID(), NewUserID()
	a := h.create(t, t0, alice, bob, carol)
	b := h.create(t, t0.Add(time.Millisecond), alice, bob, carol)
	if a.ID == b.ID {
		t.Fatal("a group created twice is one conversation")
	}
	if got := h.conversations(t, carol, 10); len(got) != 2 {
		t.Fatalf("carol lists %d conversations, want 2", len(got))
	}
}

// ---------------------------------------------------------------------------------- messages

func testSendAndRead(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob, carol := NewUserID(), NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob, carol)
	text := "Hello, ✌️ world\nsecond line"
	m := h.send(t, c.ID, alice, text, t0.Add(time.Second))

	p, err := h.Store.ListMessages(ctx, c.ID, bob, domain.MessageCursor{}, 10)
	if err != nil || len(p.Messages) != 1 || p.Messages[0] != m || !p.Next.IsZero() || p.Messages[0].CreatedAt.Location() != time.UTC {
		t.Fatalf("list: %+v, %v", p, err)
	}
	got := h.read(t, c.ID, bob)
	if got.LastMessage == nil || *got.LastMessage != m || !got.LastActivityAt.Equal(m.CreatedAt) || got.UnreadCount != 1 {
		t.Errorf("bob reads %+v (last %+v)", got, got.LastMessage)
	}
	if got := h.read(t, c.ID, alice); got.UnreadCount != 0 {
		t.Errorf("the sender has %d unread, want 0", got.UnreadCount)
	}
	evs := h.events(t, c.ID)
	want := eventsv1.MessageSentPayload{MessageID: m.ID, ConversationID: c.ID, SenderID: alice, ParticipantIDs: c.ParticipantIDs,
		Text: text, ClientMsgID: m.ClientMsgID, SentAt: m.CreatedAt}
	if len(evs) != 1 || evs[0].MessageID != want.MessageID || evs[0].SenderID != alice || !slices.Equal(evs[0].ParticipantIDs, want.ParticipantIDs) ||
		evs[0].Text != text || evs[0].ClientMsgID != want.ClientMsgID || !evs[0].SentAt.Equal(want.SentAt) || evs[0].ConversationID != c.ID {
		t.Fatalf("events %+v, want one %+v", evs, want)
	}
}

func testRetry(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	first := message(t, c.ID, alice, "first", "retry-1", t0.Add(time.Second))
	if got, created, err := h.trySend(t, first); err != nil || !created || got != first {
		t.Fatalf("first send: %+v, %v, %v", got, created, err)
	}
	// The retry is a new request: a new id, a later time, even another text.
	again := message(t, c.ID, alice, "second attempt", "retry-1", t0.Add(2*time.Second))
	got, created, err := h.trySend(t, again)
	if err != nil || created || got != first {
		t.Fatalf("retry: %+v, created %v, %v; want the first message", got, created, err)
	}
	if all := h.history(t, c.ID, bob, 10); !slices.Equal(ids(all, messageID), []string{first.ID}) {
		t.Errorf("history %v, want only the first message", ids(all, messageID))
	}
	if evs := h.events(t, c.ID); len(evs) != 1 || evs[0].MessageID != first.ID {
		t.Errorf("events %+v, want the first send's only", evs)
	}
	if got := h.read(t, c.ID, bob); got.UnreadCount != 1 || got.LastMessage == nil || *got.LastMessage != first {
		t.Errorf("bob reads %+v", got)
	}
}

func testConcurrentRetry(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	const n = 8
	sent := make([]domain.Message, n)
	got := make([]domain.Message, n)
	created := make([]bool, n)
	for i := range sent {
		sent[i] = message(t, c.ID, alice, fmt.Sprintf("attempt %d", i), "same-id", t0.Add(time.Second+time.Duration(i)*time.Millisecond))
	}
	errs := parallel(n, func(i int) error {
		var err error
		got[i], created[i], err = h.trySend(t, sent[i])
		return err
	})
	var winner domain.Message
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("send %d: %v", i, errs[i])
		}
		if created[i] {
			if winner.ID != "" {
				t.Fatalf("two sends report created: %s and %s", winner.ID, got[i].ID)
			}
			winner = got[i]
		}
	}
	if winner.ID == "" {
		t.Fatal("no send reports created")
	}
	for i := range n {
		if got[i] != winner {
			t.Errorf("send %d returned %+v, want the stored %+v", i, got[i], winner)
		}
	}
	if all := h.history(t, c.ID, bob, 10); !slices.Equal(ids(all, messageID), []string{winner.ID}) {
		t.Errorf("history %v, want one message %s", ids(all, messageID), winner.ID)
	}
	if evs := h.events(t, c.ID); len(evs) != 1 || evs[0].MessageID != winner.ID || evs[0].Text != winner.Text {
		t.Errorf("events %+v, want one for %s", evs, winner.ID)
	}
}

func testClientIDScope(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c1 := h.create(t, t0, alice, bob)
	c2 := h.create(t, t0, alice, bob, NewUserID())
	at := t0.Add(time.Second)
	for i, m := range []domain.Message{
		message(t, c1.ID, alice, "a", "k", at),
		message(t, c1.ID, bob, "b", "k", at.Add(time.Millisecond)),          // another sender
		message(t, c2.ID, alice, "c", "k", at.Add(2*time.Millisecond)),      // another conversation
		message(t, c1.ID, alice, "d", "K", at.Add(3*time.Millisecond)),      // ids are case-sensitive
		message(t, c1.ID, alice, "e", "k ", at.Add(4*time.Millisecond)),     // and not trimmed
		message(t, c1.ID, alice, "f", "ключ-✌", at.Add(5*time.Millisecond)), // any printable text
	} {
		if got, created, err := h.trySend(t, m); err != nil || !created || got != m {
			t.Errorf("message %d: %+v, created %v, %v", i, got, created, err)
		}
	}
	if n := len(h.history(t, c1.ID, alice, 100)); n != 5 {
		t.Errorf("%d messages in the first conversation, want 5", n)
	}
}

func testOutsider(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob, eve := NewUserID(), NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	m := h.send(t, c.ID, alice, "secret", t0.Add(time.Second))
	unknown := IDAt(t, t0)

	for _, id := range []string{c.ID, unknown} {
		what := "the conversation"
		if id == unknown {
			what = "an unknown conversation"
		}
		t.Run(what, func(t *testing.T) {
			if _, err := h.Store.Conversation(ctx, id, eve); !errors.Is(err, domain.ErrConversationNotFound) {
				t.Errorf("read: %v", err)
			}
			if _, err := h.Store.ListMessages(ctx, id, eve, domain.MessageCursor{}, 10); !errors.Is(err, domain.ErrConversationNotFound) {
				t.Errorf("list messages: %v", err)
			}
			if _, _, err := h.trySend(t, message(t, id, eve, "let me in", "x", t0.Add(2*time.Second))); !errors.Is(err, domain.ErrConversationNotFound) {
				t.Errorf("send: %v", err)
			}
			if err := h.Store.MarkRead(ctx, id, eve, m.ID); !errors.Is(err, domain.ErrConversationNotFound) {
				t.Errorf("mark read: %v", err)
			}
		})
	}
	if got := h.conversations(t, eve, 10); len(got) != 0 {
		t.Errorf("the outsider lists %d conversations", len(got))
	}
	if evs := h.events(t, c.ID); len(evs) != 1 {
		t.Errorf("%d events, want the participant's message only", len(evs))
	}
	if all := h.history(t, c.ID, bob, 10); len(all) != 1 {
		t.Errorf("%d messages, want the participant's only", len(all))
	}
}

func testBuckets(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	size := h.bucket.Milliseconds()
	// The start of the bucket after t0's, and times around its boundaries: several messages
	// in some buckets, one in others, and runs of empty buckets between.
	b1 := time.UnixMilli((t0.UnixMilli()/size + 1) * size).UTC()
	at := func(buckets int, offset time.Duration) time.Time {
		return b1.Add(time.Duration(buckets) * h.bucket).Add(offset)
	}
	times := []time.Time{
		t0.Add(time.Millisecond), t0.Add(2 * time.Millisecond),
		at(0, -time.Millisecond), // the last millisecond of t0's bucket
		at(0, 0), at(0, time.Millisecond), at(0, h.bucket/2),
		at(1, -time.Millisecond),                                                                    // the last millisecond of the same bucket
		at(1, 0),                                                                                    // alone in its bucket
		at(5, h.bucket/3),                                                                           // after three empty buckets
		at(40, 0), at(40, time.Millisecond), at(40, 2*time.Millisecond), at(40, 3*time.Millisecond), // after 34 empty buckets
	}
	var sent []domain.Message
	for i, tm := range times {
		sent = append(sent, h.send(t, c.ID, alice, fmt.Sprintf("m%02d", i), tm))
	}
	want := newestFirst(sent)
	for _, limit := range []int{1, 2, 3, 4, 5, 7, len(sent) - 1, len(sent), 100} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			if got := ids(h.history(t, c.ID, alice, limit), messageID); !slices.Equal(got, want) {
				t.Errorf("history\n got %v\nwant %v", got, want)
			}
		})
	}
	// A cursor just after a run of empty buckets continues in the next non-empty one.
	p, err := h.Store.ListMessages(ctxFor(t), c.ID, alice, domain.MessageCursor{BeforeID: sent[8].ID}, 3)
	if err != nil || !slices.Equal(ids(p.Messages, messageID), []string{sent[7].ID, sent[6].ID, sent[5].ID}) {
		t.Errorf("after %s: %v, %v", sent[8].ID, ids(p.Messages, messageID), err)
	}
	// A cursor older than everything: an empty last page.
	p, err = h.Store.ListMessages(ctxFor(t), c.ID, alice, domain.MessageCursor{BeforeID: sent[0].ID}, 3)
	if err != nil || len(p.Messages) != 0 || !p.Next.IsZero() {
		t.Errorf("after the oldest: %+v, %v", p, err)
	}
	last := sent[len(sent)-1]
	if got := h.read(t, c.ID, alice); got.LastMessage == nil || *got.LastMessage != last || !got.LastActivityAt.Equal(last.CreatedAt) {
		t.Errorf("last message %+v at %v, want %s", got.LastMessage, got.LastActivityAt, last.ID)
	}
	// Unread counts reach across the buckets too.
	if err := h.Store.MarkRead(ctxFor(t), c.ID, bob, sent[6].ID); err != nil {
		t.Fatal(err)
	}
	if got := h.read(t, c.ID, bob).UnreadCount; got != int64(len(sent)-7) {
		t.Errorf("bob has %d unread after marking the 7th of %d read, want %d", got, len(sent), len(sent)-7)
	}
	if evs := h.events(t, c.ID); len(evs) != len(sent) {
		t.Errorf("%d events for %d messages", len(evs), len(sent))
	}
}

func testPagingDuringSends(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	var before []domain.Message
	for i := range 25 {
		before = append(before, h.send(t, c.ID, alice, fmt.Sprintf("old %d", i), t0.Add(time.Duration(i+1)*time.Second)))
	}
	var (
		got    []string
		cursor domain.MessageCursor
		next   = t0.Add(time.Hour)
	)
	for {
		p, err := h.Store.ListMessages(ctxFor(t), c.ID, bob, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Messages, messageID)...)
		if p.Next.IsZero() {
			break
		}
		cursor = p.Next
		// New messages between pages are newer than every listed one: they belong before the
		// first page and do not move the cursor.
		h.send(t, c.ID, bob, "new", next)
		next = next.Add(time.Second)
	}
	if want := newestFirst(before); !slices.Equal(got, want) {
		t.Fatalf("paged\n got %v\nwant %v", got, want)
	}
}

func testUnread(t *testing.T, h *harness) {
	ctx := ctxFor(t)
	alice, bob, carol := NewUserID(), NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob, carol)
	other := h.create(t, t0, alice, bob)
	foreign := h.send(t, other.ID, alice, "elsewhere", t0.Add(time.Second))
	unread := func(who string) int64 {
		t.Helper()
		return h.read(t, c.ID, who).UnreadCount
	}
	check := func(step string, a, b, cc int64) {
		t.Helper()
		if ga, gb, gc := unread(alice), unread(bob), unread(carol); ga != a || gb != b || gc != cc {
			t.Errorf("%s: unread alice %d bob %d carol %d, want %d %d %d", step, ga, gb, gc, a, b, cc)
		}
	}
	a1 := h.send(t, c.ID, alice, "one", t0.Add(2*time.Second))
	a2 := h.send(t, c.ID, alice, "two", t0.Add(3*time.Second))
	a3 := h.send(t, c.ID, alice, "three", t0.Add(4*time.Second))
	check("after three from alice", 0, 3, 3)

	if err := h.Store.MarkRead(ctx, c.ID, bob, a2.ID); err != nil {
		t.Fatal(err)
	}
	check("bob read up to the second", 0, 1, 3)
	if err := h.Store.MarkRead(ctx, c.ID, bob, a1.ID); err != nil {
		t.Fatal(err)
	}
	check("bob's marker does not move back", 0, 1, 3)
	for name, id := range map[string]string{
		"a message of another conversation": foreign.ID,
		"an unknown message":                IDAt(t, t0.Add(3*time.Second)),
		"an id that is no message id":       NewUserID(),
	} {
		if err := h.Store.MarkRead(ctx, c.ID, bob, id); !errors.Is(err, domain.ErrMessageNotFound) {
			t.Errorf("marking %s read: %v, want ErrMessageNotFound", name, err)
		}
	}
	check("refused markers change nothing", 0, 1, 3)

	b1 := h.send(t, c.ID, bob, "bob speaks", t0.Add(5*time.Second))
	check("sending reads everything before", 1, 0, 4)
	if err := h.Store.MarkRead(ctx, c.ID, carol, b1.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.MarkRead(ctx, c.ID, alice, b1.ID); err != nil {
		t.Fatal(err)
	}
	check("all read", 0, 0, 0)
	// Concurrent markers: the furthest wins whatever the order.
	ms := []domain.Message{a1, a2, a3, b1}
	errs := parallel(len(ms), func(i int) error { return h.Store.MarkRead(ctx, c.ID, carol, ms[i].ID) })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c2 := h.send(t, c.ID, alice, "four", t0.Add(6*time.Second))
	check("after concurrent markers", 0, 1, 1)
	if err := h.Store.MarkRead(ctx, c.ID, carol, c2.ID); err != nil {
		t.Fatal(err)
	}
	check("carol read the last", 0, 1, 0)
}

func testUnreadLimit(t *testing.T, h *harness) {
	alice, bob := NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob)
	n := domain.UnreadCountLimit + 3
	errs := parallel(n, func(i int) error {
		m := message(t, c.ID, alice, fmt.Sprintf("flood %d", i), fmt.Sprintf("f%d", i),
			t0.Add(time.Duration(i+1)*time.Millisecond).Add(time.Duration(i/20)*h.bucket))
		_, _, err := h.trySend(t, m)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := h.read(t, c.ID, bob).UnreadCount; got != domain.UnreadCountLimit {
		t.Errorf("%d unread of %d, want the limit %d", got, n, domain.UnreadCountLimit)
	}
	all := h.history(t, c.ID, bob, 100)
	if err := h.Store.MarkRead(ctxFor(t), c.ID, bob, all[4].ID); err != nil {
		t.Fatal(err)
	}
	if got := h.read(t, c.ID, bob).UnreadCount; got != 4 {
		t.Errorf("%d unread after marking the 5th newest read, want 4", got)
	}
	if err := h.Store.MarkRead(ctxFor(t), c.ID, bob, all[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := h.read(t, c.ID, bob).UnreadCount; got != 0 {
		t.Errorf("%d unread after reading the newest", got)
	}
}

func testListByActivity(t *testing.T, h *harness) {
	me := NewUserID()
	var convs []domain.Conversation
	for i := range 6 {
		var c domain.Conversation
		if i%2 == 0 {
			c = h.create(t, t0.Add(time.Duration(i)*time.Second), me, NewUserID())
		} else {
			c = h.create(t, t0.Add(time.Duration(i)*time.Second), NewUserID(), me, NewUserID())
		}
		convs = append(convs, c)
	}
	// Newest creation first while nobody wrote.
	want := []string{convs[5].ID, convs[4].ID, convs[3].ID, convs[2].ID, convs[1].ID, convs[0].ID}
	for _, limit := range []int{1, 2, 4, 6, 10} {
		if got := ids(h.conversations(t, me, limit), conversationID); !slices.Equal(got, want) {
			t.Fatalf("limit %d: %v, want %v", limit, got, want)
		}
	}
	// Messages move their conversation to the top, in the order of the last message.
	at := t0.Add(time.Minute)
	for _, i := range []int{2, 0, 4, 2} {
		others := slices.DeleteFunc(slices.Clone(convs[i].ParticipantIDs), func(p string) bool { return p == me })
		h.send(t, convs[i].ID, others[0], fmt.Sprintf("to %d", i), at)
		at = at.Add(time.Second)
	}
	want = []string{convs[2].ID, convs[4].ID, convs[0].ID, convs[5].ID, convs[3].ID, convs[1].ID}
	for _, limit := range []int{1, 2, 3, 5, 6, 100} {
		list := h.conversations(t, me, limit)
		if got := ids(list, conversationID); !slices.Equal(got, want) {
			t.Fatalf("limit %d after messages: %v, want %v", limit, got, want)
		}
		if list[0].LastMessage == nil || list[0].LastMessage.Text != "to 2" || list[0].UnreadCount != 2 ||
			list[1].UnreadCount != 1 || list[3].LastMessage != nil || list[3].UnreadCount != 0 {
			t.Errorf("limit %d: first %+v, second %+v, fourth %+v", limit, list[0], list[1], list[3])
		}
		for i := 1; i < len(list); i++ {
			if list[i].LastActivityAt.After(list[i-1].LastActivityAt) {
				t.Errorf("limit %d: %s at %v is listed after %v", limit, list[i].ID, list[i].LastActivityAt, list[i-1].LastActivityAt)
			}
		}
	}
	// A message older than the conversation's last activity (a sender whose clock is behind)
	// does not move it back.
	h.send(t, convs[2].ID, me, "late", t0.Add(30*time.Second))
	if got := ids(h.conversations(t, me, 2), conversationID); !slices.Equal(got, want) {
		t.Errorf("after a late message: %v, want %v", got, want)
	}
	if got := h.read(t, convs[2].ID, me); got.LastMessage == nil || got.LastMessage.Text != "to 2" {
		t.Errorf("a late message became the last one: %+v", got.LastMessage)
	}
}

func testConcurrentActivity(t *testing.T, h *harness) {
	alice, bob, carol := NewUserID(), NewUserID(), NewUserID()
	c := h.create(t, t0, alice, bob, carol)
	quiet := h.create(t, t0.Add(time.Millisecond), alice, bob)
	const n = 12
	sent := make([]domain.Message, n)
	for i := range sent {
		sender := []string{alice, bob, carol}[i%3]
		sent[i] = message(t, c.ID, sender, fmt.Sprintf("burst %d", i), fmt.Sprintf("b%d", i), t0.Add(time.Second+time.Duration(i)*time.Millisecond))
	}
	errs := parallel(n, func(i int) error {
		_, _, err := h.trySend(t, sent[i])
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	newest := sent[n-1]
	for _, who := range []string{alice, bob, carol} {
		for _, limit := range []int{1, 2, 10} {
			list := h.conversations(t, who, limit)
			want := []string{c.ID}
			if who != carol {
				want = append(want, quiet.ID)
			}
			if got := ids(list, conversationID); !slices.Equal(got, want) {
				t.Fatalf("%s, limit %d: %v, want %v", who, limit, got, want)
			}
			if list[0].LastMessage == nil || *list[0].LastMessage != newest || !list[0].LastActivityAt.Equal(newest.CreatedAt) {
				t.Errorf("%s: last message %+v at %v, want %+v", who, list[0].LastMessage, list[0].LastActivityAt, newest)
			}
		}
	}
	if got := ids(h.history(t, c.ID, alice, 5), messageID); !slices.Equal(got, newestFirst(sent)) {
		t.Errorf("history %v", got)
	}
	evs := h.events(t, c.ID)
	if len(evs) != n {
		t.Fatalf("%d events for %d messages", len(evs), n)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.MessageID] = true
	}
	for _, m := range sent {
		if !seen[m.ID] {
			t.Errorf("no event for %s", m.ID)
		}
	}
}
