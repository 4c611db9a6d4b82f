// Package app is messaging-service's application layer: the use cases (create and list
// conversations, send and list messages, mark read) as one plain struct of handlers, the port
// it needs from the outside (the Store, which two adapters implement: SQLite and Cassandra)
// as an interface it owns, and the mapping of domain errors to platform error codes at its
// edge: every error a handler returns is an *errs.Error.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// Producer is the producer name stamped on the events the service emits.
const Producer = "messaging-service"

// Handler is one use case: it handles a command or query Q and answers R.
type Handler[Q, R any] interface {
	Handle(ctx context.Context, q Q) (R, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[Q, R any] func(ctx context.Context, q Q) (R, error)

// Handle calls f.
func (f HandlerFunc[Q, R]) Handle(ctx context.Context, q Q) (R, error) { return f(ctx, q) }

// None is the answer of a use case that answers nothing but success.
type None struct{}

// Application lists the use cases of messaging-service. Every handler returns errors as
// *errs.Error: validation_failed with field pointers (/caller_id, /participant_ids, /text,
// /client_msg_id, /up_to_message_id, /cursor, /limit); not_found for a conversation that does
// not exist or that the caller does not take part in (the same answer, so that nobody learns
// whether an id is taken) and for a message the conversation does not hold; internal for
// everything unexpected.
type Application struct {
	CreateConversation Handler[CreateConversation, Created[domain.Conversation]]
	ListConversations  Handler[ListConversations, ConversationPage]
	SendMessage        Handler[SendMessage, Created[domain.Message]]
	ListMessages       Handler[ListMessages, MessagePage]
	MarkRead           Handler[MarkRead, None]
}

// Created is what a use case that may find its result already made answers: the result, and
// whether this call made it.
type Created[T any] struct {
	Value   T
	Created bool
}

// EventFunc makes the event that announces m, sent to a conversation of participantIDs. A Store
// calls it once it knows both, before it writes anything.
type EventFunc func(m domain.Message, participantIDs []string) (events.Envelope, error)

// Store is the persistence the use cases need; adapters.SQLStore (SQLite, embedded mode) and
// adapters.CassandraStore (distributed mode) implement it, and adapters/storetest holds the
// contract both pass. Errors are domain sentinels where the domain names the failure
// (ErrConversationNotFound, ErrMessageNotFound). Every method that takes a viewer or sender
// answers ErrConversationNotFound when that user does not take part in the conversation,
// exactly as for an unknown one.
type Store interface {
	// CreateConversation stores c (ID, ParticipantIDs and CreatedAt set, LastActivityAt equal
	// to CreatedAt) and returns it as viewerID sees it, with created true. When c is
	// one-to-one and its pair has a conversation already (also one being created concurrently),
	// it stores nothing and returns that one, with created false.
	CreateConversation(ctx context.Context, c domain.Conversation, viewerID string) (domain.Conversation, bool, error)
	// Conversation returns the conversation id as viewerID sees it.
	Conversation(ctx context.Context, id, viewerID string) (domain.Conversation, error)
	// ListConversations returns a page of viewerID's conversations after the cursor, by last
	// activity, newest first.
	ListConversations(ctx context.Context, viewerID string, after domain.ConversationCursor, limit int) (domain.ConversationPage, error)
	// SendMessage stores m (every field set) in its conversation, makes it the conversation's
	// newest activity if it is, moves the sender's read marker up to it, and records the event
	// newEvent makes, all atomically: the event is published if and only if the message is
	// stored. If the sender already sent a message with m.ClientMsgID to this conversation
	// (also concurrently), it stores and records nothing and returns that message, with
	// created false.
	SendMessage(ctx context.Context, m domain.Message, newEvent EventFunc) (domain.Message, bool, error)
	// ListMessages returns a page of the conversation's messages before the cursor, newest
	// first, if viewerID takes part in it.
	ListMessages(ctx context.Context, conversationID, viewerID string, before domain.MessageCursor, limit int) (domain.MessagePage, error)
	// MarkRead moves viewerID's read marker of the conversation up to messageID, a message of
	// the conversation (ErrMessageNotFound otherwise); a marker already past it stays.
	MarkRead(ctx context.Context, conversationID, viewerID, messageID string) error
}

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
}

// Deps are the adapters the application runs on; all are required.
type Deps struct {
	Store Store
}

// New builds the application.
func New(cfg Config, d Deps, log *slog.Logger) (*Application, error) {
	if d.Store == nil {
		return nil, errors.New("messaging app: Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{store: d.Store, now: cfg.Now, log: log}
	return &Application{
		CreateConversation: edge(s.createConversation),
		ListConversations:  edge(s.listConversations),
		SendMessage:        edge(s.sendMessage),
		ListMessages:       edge(s.listMessages),
		MarkRead:           edge(s.markRead),
	}, nil
}

// service holds what the use cases share; each use case is one of its methods.
type service struct {
	store Store
	now   func() time.Time
	// ids makes the ids of conversations and messages, strictly increasing within the process.
	ids domain.IDGenerator
	log *slog.Logger
}

// newID returns a fresh id for something created now, and that time as the id carries it
// (UTC, milliseconds), so that stored times and id order never disagree.
func (s *service) newID() (string, time.Time, error) {
	id, err := s.ids.New(s.now())
	if err != nil {
		return "", time.Time{}, err
	}
	at, _ := domain.IDTime(id)
	return id, at, nil
}

// edge wraps a use case so that its errors leave the application as *errs.Error.
func edge[Q, R any](fn func(context.Context, Q) (R, error)) Handler[Q, R] {
	return HandlerFunc[Q, R](func(ctx context.Context, q Q) (R, error) {
		r, err := fn(ctx, q)
		if err != nil {
			var zero R
			return zero, toError(err)
		}
		return r, nil
	})
}
