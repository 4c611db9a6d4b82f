package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/piazza-social/piazza/api/eventsv1"
)

// Notification is one entry of a user's inbox.
type Notification struct {
	// UserID is the recipient.
	UserID string
	// Seq is the entry's place in the recipient's inbox: 1, 2, 3, … per user, strictly
	// increasing in the order the entries were stored, never reused.
	Seq int64
	// EventID is the id of the domain event that caused the notification; a user gets at most
	// one notification per event.
	EventID string
	// Type is the event type, e.g. "post.created".
	Type string
	// Data is the JSON object clients receive (see Trigger.Data for its shape per type).
	Data json.RawMessage
	// CreatedAt is when the event happened (its occurred_at), UTC, microsecond precision.
	CreatedAt time.Time
	// Read reports whether the recipient's read marker has reached Seq.
	Read bool
}

// Draft is the notification an event makes, before it has a recipient and a sequence number:
// every recipient of one event gets the same draft.
type Draft struct {
	EventID   string
	Type      string
	Data      json.RawMessage
	CreatedAt time.Time
}

// Audience says who an event notifies.
type Audience int

// The audiences.
const (
	// AudienceNobody: the event notifies no one (e.g. liking your own post).
	AudienceNobody Audience = iota
	// AudienceUser: the event notifies Trigger.Recipient.
	AudienceUser
	// AudienceFollowers: the event notifies every follower of the actor.
	AudienceFollowers
	// AudienceParticipants: the event notifies each of Trigger.Recipients (the participants
	// of a conversation but the actor).
	AudienceParticipants
)

// String names the audience, for logs.
func (a Audience) String() string {
	switch a {
	case AudienceNobody:
		return "nobody"
	case AudienceUser:
		return "user"
	case AudienceFollowers:
		return "followers"
	case AudienceParticipants:
		return "participants"
	}
	return fmt.Sprintf("audience(%d)", int(a))
}

// Actor is the user whose action a notification reports.
type Actor struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// PreviewLength is how many characters of a post's or comment's text a notification carries.
const PreviewLength = 140

// Preview returns the first PreviewLength characters (runes) of text, after trimming the
// white space around it. A notification is a pointer to the post, not a copy of it.
func Preview(text string) string {
	text = strings.TrimSpace(text)
	n := 0
	for i := range text {
		if n == PreviewLength {
			return strings.TrimRightFunc(text[:i], unicode.IsSpace)
		}
		n++
	}
	return text
}

// Trigger is a domain event read as a cause of notifications: who acted, who is told, and what
// the notification says. Build one with PostCreated, PostLiked, PostCommented, UserFollowed or
// MessageSent.
type Trigger struct {
	EventID    string
	Type       string
	OccurredAt time.Time
	// Actor is who acted. Actor.Username may be empty until the application fills it in.
	Actor Actor
	// Audience says who is told; Recipient is that user when Audience is AudienceUser, and
	// Recipients are those users (distinct, never the actor) when it is AudienceParticipants.
	Audience   Audience
	Recipient  string
	Recipients []string

	postID    string
	commentID string
	text      string
	message   Message
}

// Message is a direct message as message.sent reports it.
type Message struct {
	ID             string
	ConversationID string
	SenderID       string
	// ParticipantIDs are the conversation's participants when the message was sent, the
	// sender included.
	ParticipantIDs []string
	Text           string
	ClientMsgID    string
	SentAt         time.Time
}

// required reports every empty value of kv (name, value, name, value, …) as an
// ErrInvalidEventFields field error, or nil.
func required(kv ...string) error {
	var f fields
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.TrimSpace(kv[i+1]) == "" {
			f.Add(kv[i], ErrInvalidEventFields)
		}
	}
	return f.Err()
}

func base(eventID, typ string, at time.Time, actorID string) Trigger {
	return Trigger{EventID: eventID, Type: typ, OccurredAt: at.UTC().Truncate(time.Microsecond), Actor: Actor{ID: actorID}}
}

// single makes the trigger notify recipient, unless the recipient is the actor: nobody is told
// about their own action.
func (t Trigger) single(recipient string) Trigger {
	if recipient == t.Actor.ID {
		t.Audience = AudienceNobody
		return t
	}
	t.Audience, t.Recipient = AudienceUser, recipient
	return t
}

// PostCreated: authorID published post postID; every follower of the author is told.
func PostCreated(eventID string, at time.Time, postID, authorID, text string) (Trigger, error) {
	if err := required("event_id", eventID, "post_id", postID, "author_id", authorID); err != nil {
		return Trigger{}, err
	}
	t := base(eventID, eventsv1.PostCreated, at, authorID)
	t.Audience, t.postID, t.text = AudienceFollowers, postID, Preview(text)
	return t, nil
}

// PostLiked: likerID liked authorID's post postID; the author is told, unless they liked their
// own post.
func PostLiked(eventID string, at time.Time, postID, authorID, likerID string) (Trigger, error) {
	if err := required("event_id", eventID, "post_id", postID, "author_id", authorID, "liker_id", likerID); err != nil {
		return Trigger{}, err
	}
	t := base(eventID, eventsv1.PostLiked, at, likerID)
	t.postID = postID
	return t.single(authorID), nil
}

// PostCommented: commenterID commented (comment commentID) on authorID's post postID; the
// author is told, unless they commented on their own post.
func PostCommented(eventID string, at time.Time, postID, authorID, commentID, commenterID, text string) (Trigger, error) {
	if err := required("event_id", eventID, "post_id", postID, "author_id", authorID,
		"comment_id", commentID, "commenter_id", commenterID); err != nil {
		return Trigger{}, err
	}
	t := base(eventID, eventsv1.PostCommented, at, commenterID)
	t.postID, t.commentID, t.text = postID, commentID, Preview(text)
	return t.single(authorID), nil
}

// UserFollowed: followerID (whose username the event may carry) started following
// followeeID; the followee is told.
func UserFollowed(eventID string, at time.Time, followerID, followerUsername, followeeID string) (Trigger, error) {
	if err := required("event_id", eventID, "follower_id", followerID, "followee_id", followeeID); err != nil {
		return Trigger{}, err
	}
	t := base(eventID, eventsv1.UserFollowed, at, followerID)
	t.Actor.Username = followerUsername
	return t.single(followeeID), nil
}

// MessageSent: m.SenderID sent message m to conversation m.ConversationID; every other
// participant is told. The notification carries the whole message (not a preview): it is how
// the message reaches the recipients' open conversations in real time.
func MessageSent(eventID string, at time.Time, m Message) (Trigger, error) {
	var noParticipants fields
	if len(m.ParticipantIDs) == 0 {
		noParticipants.Add("participant_ids", ErrInvalidEventFields)
	}
	if err := errors.Join(required("event_id", eventID, "message_id", m.ID, "conversation_id", m.ConversationID,
		"sender_id", m.SenderID), noParticipants.Err()); err != nil {
		return Trigger{}, err
	}
	t := base(eventID, eventsv1.MessageSent, at, m.SenderID)
	m.ParticipantIDs = slices.Clone(m.ParticipantIDs)
	if m.SentAt.IsZero() {
		m.SentAt = at
	}
	m.SentAt = m.SentAt.UTC()
	t.message = m
	for _, id := range m.ParticipantIDs {
		if strings.TrimSpace(id) != "" && id != m.SenderID && !slices.Contains(t.Recipients, id) {
			t.Recipients = append(t.Recipients, id)
		}
	}
	if len(t.Recipients) > 0 {
		t.Audience = AudienceParticipants
	}
	return t, nil
}

// Notifies reports whether userID is told about the event, as one of its audience: for a
// fan-out to followers every follower but the actor; for a single recipient that user; for a
// conversation's participants each of them but the actor.
func (t Trigger) Notifies(userID string) bool {
	switch t.Audience {
	case AudienceUser:
		return userID == t.Recipient
	case AudienceFollowers:
		return userID != "" && userID != t.Actor.ID
	case AudienceParticipants:
		return slices.Contains(t.Recipients, userID)
	}
	return false
}

// Data is the JSON object a notification carries to clients (the `data` of the SSE event and
// of GET /v1/notifications items). Every type has "actor" ({"id", "username"}: who acted;
// username is "" if the account no longer exists). Per type:
//
//	post.created    {"actor", "post_id", "author": {"id", "username"} (the actor again), "text"}
//	post.liked      {"actor", "post_id"}
//	post.commented  {"actor", "post_id", "comment_id", "text"}
//	user.followed   {"actor"}
//	message.sent    {"actor", "conversation_id", "message": {"id", "text", "client_msg_id", "sent_at"}}
//
// The "text" of a post or comment is a preview: its first PreviewLength (140) characters,
// trimmed. A message's text is the whole message, as sent. Fields are only ever added to these
// shapes.
func (t Trigger) Data() (json.RawMessage, error) {
	var v any
	switch t.Type {
	case eventsv1.PostCreated:
		v = struct {
			Actor  Actor  `json:"actor"`
			PostID string `json:"post_id"`
			Author Actor  `json:"author"`
			Text   string `json:"text"`
		}{t.Actor, t.postID, t.Actor, t.text}
	case eventsv1.PostLiked:
		v = struct {
			Actor  Actor  `json:"actor"`
			PostID string `json:"post_id"`
		}{t.Actor, t.postID}
	case eventsv1.PostCommented:
		v = struct {
			Actor     Actor  `json:"actor"`
			PostID    string `json:"post_id"`
			CommentID string `json:"comment_id"`
			Text      string `json:"text"`
		}{t.Actor, t.postID, t.commentID, t.text}
	case eventsv1.UserFollowed:
		v = struct {
			Actor Actor `json:"actor"`
		}{t.Actor}
	case eventsv1.MessageSent:
		type message struct {
			ID          string    `json:"id"`
			Text        string    `json:"text"`
			ClientMsgID string    `json:"client_msg_id"`
			SentAt      time.Time `json:"sent_at"`
		}
		m := t.message
		v = struct {
			Actor          Actor   `json:"actor"`
			ConversationID string  `json:"conversation_id"`
			Message        message `json:"message"`
		}{t.Actor, m.ConversationID, message{m.ID, m.Text, m.ClientMsgID, m.SentAt}}
	default:
		return nil, fmt.Errorf("notification domain: no data shape for event type %q", t.Type)
	}
	return json.Marshal(v)
}

// Draft returns the notification every recipient of the event gets.
func (t Trigger) Draft() (Draft, error) {
	data, err := t.Data()
	if err != nil {
		return Draft{}, err
	}
	return Draft{EventID: t.EventID, Type: t.Type, Data: data, CreatedAt: t.OccurredAt}, nil
}
