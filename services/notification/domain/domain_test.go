package domain_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/services/notification/domain"
)

var at = time.Date(2031, 3, 14, 15, 9, 26, 535897123, time.UTC)

func TestEachEventNotifiesItsRecipientsButNeverTheActor(t *testing.T) {
	type check struct {
		user string
		told bool
	}
	must := func(tr domain.Trigger, err error) domain.Trigger {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tests := []struct {
		name      string
		trigger   domain.Trigger
		audience  domain.Audience
		recipient string
		checks    []check
	}{
		{"a post notifies every follower of its author", must(domain.PostCreated("e1", at, "p1", "author", "hi")),
			domain.AudienceFollowers, "", []check{{"f1", true}, {"f2", true}, {"author", false}, {"", false}}},
		{"a like notifies the post's author", must(domain.PostLiked("e2", at, "p1", "author", "liker")),
			domain.AudienceUser, "author", []check{{"author", true}, {"liker", false}, {"f1", false}}},
		{"liking your own post notifies nobody", must(domain.PostLiked("e3", at, "p1", "author", "author")),
			domain.AudienceNobody, "", []check{{"author", false}}},
		{"a comment notifies the post's author", must(domain.PostCommented("e4", at, "p1", "author", "c1", "bob", "nice")),
			domain.AudienceUser, "author", []check{{"author", true}, {"bob", false}}},
		{"commenting on your own post notifies nobody", must(domain.PostCommented("e5", at, "p1", "author", "c1", "author", "x")),
			domain.AudienceNobody, "", []check{{"author", false}}},
		{"a follow notifies the followee", must(domain.UserFollowed("e6", at, "fan", "fanname", "star")),
			domain.AudienceUser, "star", []check{{"star", true}, {"fan", false}}},
		{"following yourself (never emitted) notifies nobody", must(domain.UserFollowed("e7", at, "me", "me", "me")),
			domain.AudienceNobody, "", []check{{"me", false}}},
		{"a message notifies every participant but its sender", must(domain.MessageSent("e8", at, domain.Message{
			ID: "m1", ConversationID: "c1", SenderID: "ann", ParticipantIDs: []string{"ann", "bob", "cat"},
		})), domain.AudienceParticipants, "", []check{{"bob", true}, {"cat", true}, {"ann", false}, {"dan", false}, {"", false}}},
		{"a message notifies each participant once, whatever the event repeats", must(domain.MessageSent("e9", at, domain.Message{
			ID: "m1", ConversationID: "c1", SenderID: "ann", ParticipantIDs: []string{"bob", "ann", "bob", " ", ""},
		})), domain.AudienceParticipants, "", []check{{"bob", true}, {"ann", false}, {" ", false}, {"", false}}},
		{"a message to a conversation of the sender alone notifies nobody", must(domain.MessageSent("e10", at, domain.Message{
			ID: "m1", ConversationID: "c1", SenderID: "ann", ParticipantIDs: []string{"ann"},
		})), domain.AudienceNobody, "", []check{{"ann", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.trigger.Audience != tc.audience || tc.trigger.Recipient != tc.recipient {
				t.Fatalf("audience %s recipient %q, want %s %q", tc.trigger.Audience, tc.trigger.Recipient, tc.audience, tc.recipient)
			}
			for _, c := range tc.checks {
				if got := tc.trigger.Notifies(c.user); got != c.told {
					t.Errorf("Notifies(%q) = %v, want %v", c.user, got, c.told)
				}
			}
		})
	}
}

func TestEventsMissingARequiredFieldAreInvalid(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"post without id", second(domain.PostCreated("e", at, "", "a", "t")), "post_id"},
		{"post without author", second(domain.PostCreated("e", at, "p", " ", "t")), "author_id"},
		{"like without liker", second(domain.PostLiked("e", at, "p", "a", "")), "liker_id"},
		{"comment without comment id", second(domain.PostCommented("e", at, "p", "a", "", "b", "t")), "comment_id"},
		{"follow without followee", second(domain.UserFollowed("e", at, "f", "n", "")), "followee_id"},
		{"event without id", second(domain.PostLiked("", at, "p", "a", "b")), "event_id"},
		{"message without conversation", second(domain.MessageSent("e", at, domain.Message{
			ID: "m", SenderID: "a", ParticipantIDs: []string{"a", "b"}})), "conversation_id"},
		{"message without id", second(domain.MessageSent("e", at, domain.Message{
			ConversationID: "c", SenderID: "a", ParticipantIDs: []string{"a", "b"}})), "message_id"},
		{"message without sender", second(domain.MessageSent("e", at, domain.Message{
			ID: "m", ConversationID: "c", ParticipantIDs: []string{"a", "b"}})), "sender_id"},
		{"message without participants", second(domain.MessageSent("e", at, domain.Message{
			ID: "m", ConversationID: "c", SenderID: "a"})), "participant_ids"},
	}
	for _, tc := range tests {
		fes := domain.FieldErrors(tc.err)
		if !errors.Is(tc.err, domain.ErrInvalidEventFields) || len(fes) != 1 || fes[0].Field != tc.field {
			t.Errorf("%s: err = %v, want ErrInvalidEventFields on %s", tc.name, tc.err, tc.field)
		}
	}
	// An empty post text is a valid event: the notification says so with "".
	if _, err := domain.PostCreated("e", at, "p", "a", ""); err != nil {
		t.Errorf("post with empty text: %v", err)
	}
}

func second(_ domain.Trigger, err error) error { return err }

func TestDataHasTheDocumentedShapePerType(t *testing.T) {
	long := strings.Repeat("é", 150)
	tests := []struct {
		name string
		tr   func() (domain.Trigger, error)
		want string
	}{
		{"post.created", func() (domain.Trigger, error) { return domain.PostCreated("e", at, "p1", "a1", "  hello  ") },
			`{"actor":{"id":"a1","username":"ann"},"post_id":"p1","author":{"id":"a1","username":"ann"},"text":"hello"}`},
		{"post.liked", func() (domain.Trigger, error) { return domain.PostLiked("e", at, "p1", "x", "a1") },
			`{"actor":{"id":"a1","username":"ann"},"post_id":"p1"}`},
		{"post.commented", func() (domain.Trigger, error) { return domain.PostCommented("e", at, "p1", "x", "c1", "a1", long) },
			`{"actor":{"id":"a1","username":"ann"},"post_id":"p1","comment_id":"c1","text":"` + strings.Repeat("é", 140) + `"}`},
		{"user.followed", func() (domain.Trigger, error) { return domain.UserFollowed("e", at, "a1", "", "x") },
			`{"actor":{"id":"a1","username":"ann"}}`},
		{"message.sent", func() (domain.Trigger, error) {
			return domain.MessageSent("e", at, domain.Message{
				ID: "m1", ConversationID: "c1", SenderID: "a1", ParticipantIDs: []string{"a1", "b"},
				Text: " " + long + " ", ClientMsgID: "web-7", SentAt: time.Date(2031, 3, 14, 16, 9, 26, 5e8, time.FixedZone("CET", 3600)),
			})
		}, `{"actor":{"id":"a1","username":"ann"},"conversation_id":"c1","message":{"id":"m1","text":" ` + long + ` ","client_msg_id":"web-7","sent_at":"2031-03-14T15:09:26.5Z"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := tc.tr()
			if err != nil {
				t.Fatal(err)
			}
			tr.Actor.Username = "ann"
			d, err := tr.Draft()
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Data) != tc.want {
				t.Errorf("data\n got %s\nwant %s", d.Data, tc.want)
			}
			if d.Type != tc.name || d.EventID != "e" || !d.CreatedAt.Equal(at.Truncate(time.Microsecond)) {
				t.Errorf("draft %+v: want type %s, event e, created at the event's time in µs", d, tc.name)
			}
			if !json.Valid(d.Data) {
				t.Error("data is not JSON")
			}
		})
	}
	var unknown domain.Trigger
	unknown.Type = eventsv1.UserRegistered
	if _, err := unknown.Data(); err == nil {
		t.Error("a type without a data shape produced data")
	}
}

func TestAMessagesRecipientsAreDistinctInTheEventsOrder(t *testing.T) {
	tr, err := domain.MessageSent("e", at, domain.Message{
		ID: "m1", ConversationID: "c1", SenderID: "ann", ParticipantIDs: []string{"cat", "ann", "bob", "cat", "", "bob"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cat", "bob"}; !slices.Equal(tr.Recipients, want) {
		t.Errorf("recipients %q, want %q", tr.Recipients, want)
	}
}

func TestAMessageWithoutASendTimeIsDatedByItsEvent(t *testing.T) {
	tr, err := domain.MessageSent("e", at, domain.Message{ID: "m1", ConversationID: "c1", SenderID: "a1", ParticipantIDs: []string{"a1", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.Data()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Message struct {
			SentAt time.Time `json:"sent_at"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &v); err != nil || !v.Message.SentAt.Equal(at) {
		t.Errorf("sent_at %s (%v), want the event's time %s", v.Message.SentAt, err, at)
	}
}

func TestFollowEventCarriesTheFollowersUsername(t *testing.T) {
	tr, err := domain.UserFollowed("e", at, "fan", "fanname", "star")
	if err != nil || tr.Actor != (domain.Actor{ID: "fan", Username: "fanname"}) {
		t.Fatalf("actor %+v, %v", tr.Actor, err)
	}
}

func TestPreviewKeepsTheFirst140CharactersTrimmed(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"  short \n", "short"},
		{strings.Repeat("a", 140), strings.Repeat("a", 140)},
		{strings.Repeat("a", 141), strings.Repeat("a", 140)},
		{strings.Repeat("日", 200), strings.Repeat("日", 140)},
		{strings.Repeat("a", 139) + " b", strings.Repeat("a", 139)}, // no dangling space
	}
	for _, tc := range tests {
		if got := domain.Preview(tc.in); got != tc.want {
			t.Errorf("Preview(%q…) = %q, want %q", tc.in[:min(len(tc.in), 10)], got, tc.want)
		}
	}
}

func TestCursorRoundTripsAndRejectsForgeries(t *testing.T) {
	for _, before := range []int64{2, 21, 1 << 40} {
		c := domain.Cursor{Before: before}
		got, err := domain.ParseCursor(c.Encode())
		if err != nil || got != c {
			t.Errorf("round trip of %d = %+v, %v", before, got, err)
		}
	}
	if got, err := domain.ParseCursor(""); err != nil || !got.IsZero() {
		t.Errorf(`ParseCursor("") = %+v, %v; want the start`, got, err)
	}
	if (domain.Cursor{}).Encode() != "" {
		t.Error("the start cursor encodes as non-empty")
	}
	b64 := base64URL
	for _, bad := range []string{"x", "!!!", b64("21"), b64("n1.x"), b64("n1.-5"), b64("n1.1"), b64("n1.021"), b64("n1.2 "), strings.Repeat("A", 100)} {
		if _, err := domain.ParseCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
			t.Errorf("ParseCursor(%q) = %v, want ErrCursorInvalid", bad, err)
		}
	}
}

func TestPageSizesAndLimits(t *testing.T) {
	tests := []struct {
		fn       func(int) (int, error)
		in, want int
		err      error
	}{
		{domain.PageSize, 0, 20, nil},
		{domain.PageSize, 1, 1, nil},
		{domain.PageSize, 100, 100, nil},
		{domain.PageSize, 101, 0, domain.ErrPageSizeInvalid},
		{domain.PageSize, -1, 0, domain.ErrPageSizeInvalid},
		{domain.SinceLimit, 0, 1000, nil},
		{domain.SinceLimit, 1000, 1000, nil},
		{domain.SinceLimit, 1001, 0, domain.ErrSinceLimitInvalid},
		{domain.SinceLimit, -3, 0, domain.ErrSinceLimitInvalid},
	}
	for i, tc := range tests {
		got, err := tc.fn(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("case %d: (%d) = %d, %v; want %d, %v", i, tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := domain.ReadMarker(-1); !errors.Is(err, domain.ErrSeqInvalid) {
		t.Errorf("ReadMarker(-1) = %v, want ErrSeqInvalid", err)
	}
	if got, err := domain.ReadMarker(7); got != 7 || err != nil {
		t.Errorf("ReadMarker(7) = %d, %v", got, err)
	}
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
