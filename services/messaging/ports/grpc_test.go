package ports_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/messaging"
	"github.com/piazza-social/piazza/services/messaging/adapters/storetest"
)

// discard is a bus that drops what it is given; these tests do not run the forwarder.
type discard struct{}

func (discard) Publish(string, ...*message.Message) error { return nil }
func (discard) Close() error                              { return nil }

// start serves messaging-service, built as production builds it, on a platform rpc server on a
// loopback port and returns a client made by rpc.Dial.
func start(t *testing.T) messagingv1.MessagingServiceClient {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if err := messaging.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	svc, err := messaging.New(messaging.Config{}, messaging.Deps{DB: db, Publisher: discard{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	svc.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := rpc.Dial(rpc.ClientConfig{Target: ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return messagingv1.NewMessagingServiceClient(conn)
}

func wantCode(t *testing.T, err error, code errs.Code, pointers ...string) {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("err = %v (%T), want *errs.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code %s (%v), want %s", e.Code, err, code)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Pointer)
	}
	if !slices.Equal(got, pointers) {
		t.Fatalf("field pointers %v, want %v", got, pointers)
	}
}

func TestAConversationRoundTripsOverTheWire(t *testing.T) {
	c := start(t)
	ctx := t.Context()
	alice, bob := storetest.NewUserID(), storetest.NewUserID()
	cr, err := c.CreateConversation(ctx, &messagingv1.CreateConversationRequest{CallerId: alice, ParticipantIds: []string{bob}})
	if err != nil || !cr.GetCreated() || len(cr.GetConversation().GetParticipantIds()) != 2 || cr.GetConversation().GetLastMessage() != nil {
		t.Fatalf("create: %+v, %v", cr, err)
	}
	conv := cr.GetConversation().GetId()
	again, err := c.CreateConversation(ctx, &messagingv1.CreateConversationRequest{CallerId: bob, ParticipantIds: []string{alice}})
	if err != nil || again.GetCreated() || again.GetConversation().GetId() != conv {
		t.Fatalf("create again: %+v, %v", again, err)
	}

	sent, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{CallerId: alice, ConversationId: conv, Text: " hi bob ", ClientMsgId: "m1"})
	if err != nil || !sent.GetCreated() || sent.GetMessage().GetText() != "hi bob" || sent.GetMessage().GetClientMsgId() != "m1" ||
		sent.GetMessage().GetSenderId() != alice || !sent.GetMessage().GetCreatedAt().IsValid() {
		t.Fatalf("send: %+v, %v", sent, err)
	}
	retry, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{CallerId: alice, ConversationId: conv, Text: "hi bob", ClientMsgId: "m1"})
	if err != nil || retry.GetCreated() || retry.GetMessage().GetId() != sent.GetMessage().GetId() {
		t.Fatalf("retry: %+v, %v", retry, err)
	}

	list, err := c.ListConversations(ctx, &messagingv1.ListConversationsRequest{CallerId: bob})
	if err != nil || len(list.GetItems()) != 1 || list.GetNextCursor() != "" {
		t.Fatalf("list conversations: %+v, %v", list, err)
	}
	item := list.GetItems()[0]
	if item.GetUnreadCount() != 1 || item.GetLastMessage().GetId() != sent.GetMessage().GetId() ||
		!item.GetLastActivityAt().AsTime().Equal(sent.GetMessage().GetCreatedAt().AsTime()) {
		t.Errorf("bob's conversation %+v", item)
	}
	msgs, err := c.ListMessages(ctx, &messagingv1.ListMessagesRequest{CallerId: bob, ConversationId: conv, Limit: 10})
	if err != nil || len(msgs.GetItems()) != 1 || msgs.GetItems()[0].GetId() != sent.GetMessage().GetId() {
		t.Fatalf("list messages: %+v, %v", msgs, err)
	}
	if _, err := c.MarkRead(ctx, &messagingv1.MarkReadRequest{CallerId: bob, ConversationId: conv, UpToMessageId: sent.GetMessage().GetId()}); err != nil {
		t.Fatal(err)
	}
	list, err = c.ListConversations(ctx, &messagingv1.ListConversationsRequest{CallerId: bob})
	if err != nil || list.GetItems()[0].GetUnreadCount() != 0 {
		t.Errorf("after mark read: %+v, %v", list, err)
	}
}

func TestErrorCodesAndFieldViolationsCrossTheWire(t *testing.T) {
	c := start(t)
	ctx := t.Context()
	alice, bob, eve := storetest.NewUserID(), storetest.NewUserID(), storetest.NewUserID()
	cr, err := c.CreateConversation(ctx, &messagingv1.CreateConversationRequest{CallerId: alice, ParticipantIds: []string{bob}})
	if err != nil {
		t.Fatal(err)
	}
	conv := cr.GetConversation().GetId()
	tests := []struct {
		name     string
		call     func() error
		code     errs.Code
		pointers []string
	}{
		{"missing caller", func() error {
			_, err := c.ListConversations(ctx, &messagingv1.ListConversationsRequest{})
			return err
		}, errs.ValidationFailed, []string{"/caller_id"}},
		{"missing send fields", func() error {
			_, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{Text: "x"})
			return err
		}, errs.ValidationFailed, []string{"/caller_id", "/conversation_id", "/client_msg_id"}},
		{"missing mark read fields", func() error {
			_, err := c.MarkRead(ctx, &messagingv1.MarkReadRequest{CallerId: alice})
			return err
		}, errs.ValidationFailed, []string{"/conversation_id", "/up_to_message_id"}},
		{"empty text", func() error {
			_, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{CallerId: alice, ConversationId: conv, Text: "  ", ClientMsgId: "k"})
			return err
		}, errs.ValidationFailed, []string{"/text"}},
		{"text too long", func() error {
			_, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{CallerId: alice, ConversationId: conv, Text: strings.Repeat("é", 4001), ClientMsgId: "k"})
			return err
		}, errs.ValidationFailed, []string{"/text"}},
		{"group too large", func() error {
			ids := make([]string, 50)
			for i := range ids {
				ids[i] = storetest.NewUserID()
			}
			_, err := c.CreateConversation(ctx, &messagingv1.CreateConversationRequest{CallerId: alice, ParticipantIds: ids})
			return err
		}, errs.ValidationFailed, []string{"/participant_ids"}},
		{"bad cursor", func() error {
			_, err := c.ListMessages(ctx, &messagingv1.ListMessagesRequest{CallerId: alice, ConversationId: conv, Cursor: "nope!", Limit: 500})
			return err
		}, errs.ValidationFailed, []string{"/limit", "/cursor"}},
		{"outsider sends", func() error {
			_, err := c.SendMessage(ctx, &messagingv1.SendMessageRequest{CallerId: eve, ConversationId: conv, Text: "hi", ClientMsgId: "k"})
			return err
		}, errs.NotFound, nil},
		{"outsider reads", func() error {
			_, err := c.ListMessages(ctx, &messagingv1.ListMessagesRequest{CallerId: eve, ConversationId: conv})
			return err
		}, errs.NotFound, nil},
		{"unknown message", func() error {
			_, err := c.MarkRead(ctx, &messagingv1.MarkReadRequest{CallerId: alice, ConversationId: conv, UpToMessageId: storetest.NewUserID()})
			return err
		}, errs.NotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.pointers...) })
	}
}
