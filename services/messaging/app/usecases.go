package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// CreateConversation starts a conversation of the caller with ParticipantIDs (the caller is
// added if absent). Two participants in all make the pair's one-to-one conversation, which is
// returned as it is if it exists already (Created false); three to 50 make a new group.
type CreateConversation struct {
	CallerID       string
	ParticipantIDs []string
}

// ListConversations asks for a page of the caller's conversations by last activity, newest
// first. Cursor is the NextCursor of the previous page ("" for the first); Limit 0 means
// domain.DefaultPageSize.
type ListConversations struct {
	CallerID string
	Cursor   string
	Limit    int
}

// SendMessage sends Text (1..4000 characters after trimming; stored trimmed) to a
// conversation of the caller. ClientMsgID (1..64 characters) makes it idempotent: sending again
// with the same one returns the first message (Created false) and sends nothing.
type SendMessage struct {
	CallerID       string
	ConversationID string
	Text           string
	ClientMsgID    string
}

// ListMessages asks for a page of a conversation's messages, newest first.
type ListMessages struct {
	CallerID       string
	ConversationID string
	Cursor         string
	Limit          int
}

// MarkRead moves the caller's read marker of a conversation up to one of its messages; a
// marker already past it stays where it is.
type MarkRead struct {
	CallerID       string
	ConversationID string
	UpToMessageID  string
}

// ConversationPage is one page of conversations; NextCursor is "" on the last page.
type ConversationPage struct {
	Conversations []domain.Conversation
	NextCursor    string
}

// MessagePage is one page of messages; NextCursor is "" on the last page.
type MessagePage struct {
	Messages   []domain.Message
	NextCursor string
}

// checkCaller adds a violation to bad unless id is a well-formed user id.
func checkCaller(bad *domain.Fields, id string) {
	if !domain.ValidID(id) {
		bad.Add("caller_id", domain.ErrIDInvalid)
	}
}

// fieldRule adds err to bad under field when it is a broken domain rule (nil adds nothing).
func fieldRule(bad *domain.Fields, field string, err error) {
	if de, ok := errors.AsType[*domain.Error](err); ok {
		bad.Add(field, de)
	}
}

func (s *service) createConversation(ctx context.Context, c CreateConversation) (Created[domain.Conversation], error) {
	var bad domain.Fields
	checkCaller(&bad, c.CallerID)
	participants, err := domain.Participants(c.CallerID, c.ParticipantIDs)
	fieldRule(&bad, "participant_ids", err)
	if err := bad.Err(); err != nil {
		return Created[domain.Conversation]{}, err
	}
	id, at, err := s.newID()
	if err != nil {
		return Created[domain.Conversation]{}, err
	}
	conv := domain.Conversation{ID: id, ParticipantIDs: participants, CreatedAt: at, LastActivityAt: at}
	got, created, err := s.store.CreateConversation(ctx, conv, c.CallerID)
	if err != nil {
		return Created[domain.Conversation]{}, err
	}
	return Created[domain.Conversation]{Value: got, Created: created}, nil
}

func (s *service) listConversations(ctx context.Context, q ListConversations) (ConversationPage, error) {
	var bad domain.Fields
	checkCaller(&bad, q.CallerID)
	size, err := domain.PageSize(q.Limit)
	fieldRule(&bad, "limit", err)
	after, err := domain.ParseConversationCursor(q.Cursor)
	fieldRule(&bad, "cursor", err)
	if err := bad.Err(); err != nil {
		return ConversationPage{}, err
	}
	p, err := s.store.ListConversations(ctx, q.CallerID, after, size)
	if err != nil {
		return ConversationPage{}, err
	}
	return ConversationPage{Conversations: p.Conversations, NextCursor: p.Next.Encode()}, nil
}

// sendMessage stores the message and its message.sent event atomically (see Store). The
// event is keyed by the conversation, so its events are consumed in order, and names every
// participant, so that the notification-service can tell all but the sender. An idempotent
// repeat emits nothing.
func (s *service) sendMessage(ctx context.Context, c SendMessage) (Created[domain.Message], error) {
	var bad domain.Fields
	checkCaller(&bad, c.CallerID)
	text, err := domain.ParseText(c.Text)
	fieldRule(&bad, "text", err)
	clientID, err := domain.ParseClientMsgID(c.ClientMsgID)
	fieldRule(&bad, "client_msg_id", err)
	if err := bad.Err(); err != nil {
		return Created[domain.Message]{}, err
	}
	if !domain.ValidID(c.ConversationID) {
		return Created[domain.Message]{}, domain.ErrConversationNotFound
	}
	id, at, err := s.newID()
	if err != nil {
		return Created[domain.Message]{}, err
	}
	m := domain.Message{ID: id, ConversationID: c.ConversationID, SenderID: c.CallerID, Text: text, ClientMsgID: clientID, CreatedAt: at}
	got, created, err := s.store.SendMessage(ctx, m, MessageSentEvent)
	if err != nil {
		return Created[domain.Message]{}, err
	}
	return Created[domain.Message]{Value: got, Created: created}, nil
}

// MessageSentEvent makes the message.sent event of m: a fresh event id (consumers deduplicate
// on it), keyed by the conversation, naming every participant.
func MessageSentEvent(m domain.Message, participantIDs []string) (events.Envelope, error) {
	ev, err := events.New(eventsv1.MessageSent, m.ConversationID, Producer, eventsv1.MessageSentPayload{
		MessageID:      m.ID,
		ConversationID: m.ConversationID,
		SenderID:       m.SenderID,
		ParticipantIDs: participantIDs,
		Text:           m.Text,
		ClientMsgID:    m.ClientMsgID,
		SentAt:         m.CreatedAt,
	})
	if err != nil {
		return events.Envelope{}, fmt.Errorf("messaging app: build message.sent event: %w", err)
	}
	return ev, nil
}

func (s *service) listMessages(ctx context.Context, q ListMessages) (MessagePage, error) {
	var bad domain.Fields
	checkCaller(&bad, q.CallerID)
	size, err := domain.PageSize(q.Limit)
	fieldRule(&bad, "limit", err)
	before, err := domain.ParseMessageCursor(q.Cursor)
	fieldRule(&bad, "cursor", err)
	if err := bad.Err(); err != nil {
		return MessagePage{}, err
	}
	if !domain.ValidID(q.ConversationID) {
		return MessagePage{}, domain.ErrConversationNotFound
	}
	p, err := s.store.ListMessages(ctx, q.ConversationID, q.CallerID, before, size)
	if err != nil {
		return MessagePage{}, err
	}
	return MessagePage{Messages: p.Messages, NextCursor: p.Next.Encode()}, nil
}

func (s *service) markRead(ctx context.Context, c MarkRead) (None, error) {
	var bad domain.Fields
	checkCaller(&bad, c.CallerID)
	if !domain.ValidID(c.UpToMessageID) {
		bad.Add("up_to_message_id", domain.ErrIDInvalid)
	}
	if err := bad.Err(); err != nil {
		return None{}, err
	}
	if !domain.ValidID(c.ConversationID) {
		return None{}, domain.ErrConversationNotFound
	}
	return None{}, s.store.MarkRead(ctx, c.ConversationID, c.CallerID, c.UpToMessageID)
}
