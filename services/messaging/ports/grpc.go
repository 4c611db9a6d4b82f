// Package ports is messaging-service's gRPC port: it implements
// messagingv1.MessagingServiceServer by checking the shape of each request (required fields
// present), converting between protobuf messages and the application's types, and calling the
// application. Errors come back from the application as *errs.Error; the platform's gRPC server
// sends their code in the status details, field pointers included (e.g. validation_failed at
// /text, not_found for a conversation the caller does not take part in).
package ports

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// GRPCServer serves the MessagingService contract on top of the application.
type GRPCServer struct {
	messagingv1.UnimplementedMessagingServiceServer
	app *app.Application
}

var _ messagingv1.MessagingServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

func toProtoMessage(m domain.Message) *messagingv1.Message {
	return &messagingv1.Message{
		Id:             m.ID,
		ConversationId: m.ConversationID,
		SenderId:       m.SenderID,
		Text:           m.Text,
		ClientMsgId:    m.ClientMsgID,
		CreatedAt:      timestamppb.New(m.CreatedAt),
	}
}

func toProtoConversation(c domain.Conversation) *messagingv1.Conversation {
	out := &messagingv1.Conversation{
		Id:             c.ID,
		ParticipantIds: c.ParticipantIDs,
		UnreadCount:    c.UnreadCount,
		CreatedAt:      timestamppb.New(c.CreatedAt),
		LastActivityAt: timestamppb.New(c.LastActivityAt),
	}
	if c.LastMessage != nil {
		out.LastMessage = toProtoMessage(*c.LastMessage)
	}
	return out
}

// CreateConversation creates the caller's conversation with participant_ids, or returns the
// pair's existing one-to-one conversation (created = false).
func (s *GRPCServer) CreateConversation(ctx context.Context, req *messagingv1.CreateConversationRequest) (*messagingv1.CreateConversationResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	r, err := s.app.CreateConversation.Handle(ctx, app.CreateConversation{CallerID: req.GetCallerId(), ParticipantIDs: req.GetParticipantIds()})
	if err != nil {
		return nil, err
	}
	return &messagingv1.CreateConversationResponse{Conversation: toProtoConversation(r.Value), Created: r.Created}, nil
}

// ListConversations lists the caller's conversations by last activity, newest first.
func (s *GRPCServer) ListConversations(ctx context.Context, req *messagingv1.ListConversationsRequest) (*messagingv1.ListConversationsResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId()); err != nil {
		return nil, err
	}
	p, err := s.app.ListConversations.Handle(ctx, app.ListConversations{CallerID: req.GetCallerId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	items := make([]*messagingv1.Conversation, len(p.Conversations))
	for i, c := range p.Conversations {
		items[i] = toProtoConversation(c)
	}
	return &messagingv1.ListConversationsResponse{Items: items, NextCursor: p.NextCursor}, nil
}

// SendMessage sends a message; a retry with the same client_msg_id returns the original one
// (created = false).
func (s *GRPCServer) SendMessage(ctx context.Context, req *messagingv1.SendMessageRequest) (*messagingv1.SendMessageResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId(), "conversation_id", req.GetConversationId(), "client_msg_id", req.GetClientMsgId()); err != nil {
		return nil, err
	}
	r, err := s.app.SendMessage.Handle(ctx, app.SendMessage{
		CallerID: req.GetCallerId(), ConversationID: req.GetConversationId(), Text: req.GetText(), ClientMsgID: req.GetClientMsgId(),
	})
	if err != nil {
		return nil, err
	}
	return &messagingv1.SendMessageResponse{Message: toProtoMessage(r.Value), Created: r.Created}, nil
}

// ListMessages lists a conversation's messages, newest first.
func (s *GRPCServer) ListMessages(ctx context.Context, req *messagingv1.ListMessagesRequest) (*messagingv1.ListMessagesResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId(), "conversation_id", req.GetConversationId()); err != nil {
		return nil, err
	}
	p, err := s.app.ListMessages.Handle(ctx, app.ListMessages{
		CallerID: req.GetCallerId(), ConversationID: req.GetConversationId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	items := make([]*messagingv1.Message, len(p.Messages))
	for i, m := range p.Messages {
		items[i] = toProtoMessage(m)
	}
	return &messagingv1.ListMessagesResponse{Items: items, NextCursor: p.NextCursor}, nil
}

// MarkRead moves the caller's read marker up to a message of the conversation.
func (s *GRPCServer) MarkRead(ctx context.Context, req *messagingv1.MarkReadRequest) (*messagingv1.MarkReadResponse, error) {
	if err := errs.Required("caller_id", req.GetCallerId(), "conversation_id", req.GetConversationId(), "up_to_message_id", req.GetUpToMessageId()); err != nil {
		return nil, err
	}
	if _, err := s.app.MarkRead.Handle(ctx, app.MarkRead{
		CallerID: req.GetCallerId(), ConversationID: req.GetConversationId(), UpToMessageID: req.GetUpToMessageId(),
	}); err != nil {
		return nil, err
	}
	return &messagingv1.MarkReadResponse{}, nil
}
