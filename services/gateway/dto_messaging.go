package gateway

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

// The bodies of the direct-message routes: conversations and their messages.

// Limits of messaging-service, checked at the edge so that a request that cannot succeed is
// refused without a call (and with a pointer into the body the client sent).
const (
	// maxConversationPeers is how many users besides the caller a conversation may hold:
	// messaging-service's groups hold at most 50 participants, the caller included.
	maxConversationPeers = 49
	// maxParticipantEntries bounds the participants array of a request: the 49 others and,
	// optionally, the caller themself.
	maxParticipantEntries = maxConversationPeers + 1
	// messageTextMax is the most characters (code points) a message may have once white space
	// at both ends is trimmed.
	messageTextMax = 4000
	// clientMsgIDMax is the longest client_msg_id.
	clientMsgIDMax = 64
)

var (
	// opaqueIDRE is the shape of messaging-service's conversation and message ids: opaque, but
	// URL-safe (UUIDs in practice). Anything else names nothing.
	opaqueIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// clientMsgIDRE is the shape of a client_msg_id: it travels back to the client in events
	// and answers, so it is kept to characters that need no escaping anywhere.
	clientMsgIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// createConversationRequest is the body of POST /v1/conversations: the usernames of the other
// participants (the caller may be listed too; they take part in any case).
type createConversationRequest struct {
	Participants []string `json:"participants"`
}

// validate checks the shape of the request. Whether the usernames exist, and whether anybody
// but the caller remains, is known only once they are looked up (see lookupParticipants).
func (r *createConversationRequest) validate() error {
	var c fieldCheck
	switch n := len(r.Participants); {
	case n == 0:
		c.add("/participants", "must name at least one user besides yourself")
	case n > maxParticipantEntries:
		c.add("/participants", "must name at most "+strconv.Itoa(maxConversationPeers)+" users besides yourself")
	default:
		for i, name := range r.Participants {
			if !validUsername(name) {
				c.add("/participants/"+strconv.Itoa(i), "must be a username (3 to 30 letters a-z, digits or underscores)")
			}
		}
	}
	return c.err()
}

// sendMessageRequest is the body of POST /v1/conversations/{id}/messages. ClientMsgID is the
// client's own id for the message: a retried send with the same one returns the message the
// first attempt created instead of sending it twice.
type sendMessageRequest struct {
	Text        string `json:"text"`
	ClientMsgID string `json:"client_msg_id"`
}

func (r *sendMessageRequest) validate() error {
	var c fieldCheck
	// messaging-service trims white space at both ends and counts what is left, as the edge
	// does: it must not refuse what the service would accept.
	switch n := utf8.RuneCountInString(strings.TrimSpace(r.Text)); {
	case n == 0:
		c.add("/text", "is required and must not be blank")
	case n > messageTextMax:
		c.add("/text", "must be at most "+strconv.Itoa(messageTextMax)+" characters long (leading and trailing white space aside)")
	}
	if c.length("/client_msg_id", r.ClientMsgID, 1, clientMsgIDMax) && !clientMsgIDRE.MatchString(r.ClientMsgID) {
		c.add("/client_msg_id", "may contain only letters A-Z and a-z, digits, underscores and hyphens")
	}
	return c.err()
}

// markConversationReadRequest is the body of POST /v1/conversations/{id}/read: the newest
// message the caller has read.
type markConversationReadRequest struct {
	UpToMessageID string `json:"up_to_message_id"`
}

func (r *markConversationReadRequest) validate() error {
	var c fieldCheck
	if c.length("/up_to_message_id", r.UpToMessageID, 1, 64) && !opaqueIDRE.MatchString(r.UpToMessageID) {
		c.add("/up_to_message_id", "is not a message id returned by this API")
	}
	return c.err()
}

// senderResponse is who sent a message. Username is empty when the account no longer exists.
type senderResponse struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type messageResponse struct {
	ID             string         `json:"id"`
	ConversationID string         `json:"conversation_id"`
	Sender         senderResponse `json:"sender"`
	Text           string         `json:"text"`
	ClientMsgID    string         `json:"client_msg_id"`
	CreatedAt      time.Time      `json:"created_at"`
}

// conversationResponse is a conversation as one of its participants sees it. Participants are
// users as items name them (authorResponse: id, username, display name), the caller included.
type conversationResponse struct {
	ID           string           `json:"id"`
	Participants []authorResponse `json:"participants"`
	// LastMessage is null for a conversation without messages.
	LastMessage *messageResponse `json:"last_message"`
	// UnreadCount counts the messages of others after the caller's read marker.
	UnreadCount    int64     `json:"unread_count"`
	CreatedAt      time.Time `json:"created_at"`
	LastActivityAt time.Time `json:"last_activity_at"`
}

// Times are truncated to the second like every other time of the API; the order of messages
// is the order of the lists (and of their time-sortable ids), not of created_at.
func toMessage(m *messagingv1.Message, a authors) messageResponse {
	sender := a.of(m.GetSenderId())
	return messageResponse{
		ID:             m.GetId(),
		ConversationID: m.GetConversationId(),
		Sender:         senderResponse{ID: sender.ID, Username: sender.Username},
		Text:           m.GetText(),
		ClientMsgID:    m.GetClientMsgId(),
		CreatedAt:      m.GetCreatedAt().AsTime().UTC().Truncate(time.Second),
	}
}

func toConversation(c *messagingv1.Conversation, a authors) conversationResponse {
	r := conversationResponse{
		ID:             c.GetId(),
		Participants:   make([]authorResponse, 0, len(c.GetParticipantIds())),
		UnreadCount:    c.GetUnreadCount(),
		CreatedAt:      c.GetCreatedAt().AsTime().UTC().Truncate(time.Second),
		LastActivityAt: c.GetLastActivityAt().AsTime().UTC().Truncate(time.Second),
	}
	for _, id := range c.GetParticipantIds() {
		r.Participants = append(r.Participants, a.of(id))
	}
	if m := c.GetLastMessage(); m != nil {
		msg := toMessage(m, a)
		r.LastMessage = &msg
	}
	return r
}

// userIDs lists the users a page of conversations names: the participants and the senders of
// the last messages (normally participants too).
func userIDs(convs []*messagingv1.Conversation) []string {
	var ids []string
	for _, c := range convs {
		ids = append(ids, c.GetParticipantIds()...)
		if m := c.GetLastMessage(); m != nil {
			ids = append(ids, m.GetSenderId())
		}
	}
	return ids
}

// pathConversationID is the {id} of a route; a value no conversation can have is not found,
// without asking messaging-service.
func pathConversationID(v string) (string, error) {
	if !opaqueIDRE.MatchString(v) {
		return "", errs.New(errs.NotFound, "No such conversation.")
	}
	return v, nil
}
