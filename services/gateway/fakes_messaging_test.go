package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

// fakeMessaging is an in-memory messaging-service behind the harness's loopback gRPC server:
// one-to-one conversations unique per pair, groups, idempotent sends by client_msg_id, read
// markers, and not_found for anyone who is not a participant — the contract of
// proto/piazza/messaging/v1, without the storage.
type fakeMessaging struct {
	messagingv1.UnimplementedMessagingServiceServer
	clock *fakeClock

	mu      sync.Mutex
	seq     int
	convs   []*fakeConversation // oldest first
	calls   map[string]int
	creates []*messagingv1.CreateConversationRequest
}

type fakeConversation struct {
	id           string
	participants []string
	messages     []*messagingv1.Message // oldest first
	read         map[string]int         // user → how many messages they have read
	createdAt    time.Time
}

func newFakeMessaging(clock *fakeClock) *fakeMessaging {
	return &fakeMessaging{clock: clock, calls: map[string]int{}}
}

func (f *fakeMessaging) callCount(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

// conversation returns the conversation id as caller may see it: not_found for a
// non-participant exactly as for an unknown id.
func (f *fakeMessaging) conversation(id, caller string) (*fakeConversation, error) {
	for _, c := range f.convs {
		if c.id == id && slices.Contains(c.participants, caller) {
			return c, nil
		}
	}
	return nil, errs.New(errs.NotFound, "No such conversation.")
}

func (c *fakeConversation) lastActivity() time.Time {
	if n := len(c.messages); n > 0 {
		return c.messages[n-1].CreatedAt.AsTime()
	}
	return c.createdAt
}

func (f *fakeMessaging) view(c *fakeConversation, caller string) *messagingv1.Conversation {
	v := &messagingv1.Conversation{
		Id: c.id, ParticipantIds: slices.Clone(c.participants),
		CreatedAt: timestamppb.New(c.createdAt), LastActivityAt: timestamppb.New(c.lastActivity()),
	}
	if n := len(c.messages); n > 0 {
		v.LastMessage = c.messages[n-1]
	}
	for _, m := range c.messages[c.read[caller]:] {
		if m.SenderId != caller {
			v.UnreadCount++
		}
	}
	return v
}

func (f *fakeMessaging) CreateConversation(_ context.Context, r *messagingv1.CreateConversationRequest) (*messagingv1.CreateConversationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CreateConversation"]++
	f.creates = append(f.creates, r)
	members := []string{r.GetCallerId()}
	for _, id := range r.GetParticipantIds() {
		if !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	switch {
	case len(members) < 2:
		return nil, errs.Validation("A conversation needs someone else.", errs.Field("/participant_ids", "is required"))
	case len(members) > 50:
		return nil, errs.Validation("Too many participants.", errs.Field("/participant_ids", "at most 49"))
	}
	if len(members) == 2 {
		for _, c := range f.convs {
			if len(c.participants) == 2 && slices.Contains(c.participants, members[0]) && slices.Contains(c.participants, members[1]) {
				return &messagingv1.CreateConversationResponse{Conversation: f.view(c, r.GetCallerId())}, nil
			}
		}
	}
	f.seq++
	c := &fakeConversation{id: fmt.Sprintf("conv-%03d", f.seq), participants: members, read: map[string]int{}, createdAt: f.clock.Now()}
	f.convs = append(f.convs, c)
	return &messagingv1.CreateConversationResponse{Conversation: f.view(c, r.GetCallerId()), Created: true}, nil
}

func (f *fakeMessaging) ListConversations(_ context.Context, r *messagingv1.ListConversationsRequest) (*messagingv1.ListConversationsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListConversations"]++
	var mine []*fakeConversation
	for _, c := range f.convs {
		if slices.Contains(c.participants, r.GetCallerId()) {
			mine = append(mine, c)
		}
	}
	// The most recently active first; among equals the newer conversation.
	slices.Reverse(mine)
	slices.SortStableFunc(mine, func(a, b *fakeConversation) int { return b.lastActivity().Compare(a.lastActivity()) })
	convs, next, err := page(mine, r.GetCursor(), r.GetLimit())
	if err != nil {
		return nil, err
	}
	resp := &messagingv1.ListConversationsResponse{NextCursor: next}
	for _, c := range convs {
		resp.Items = append(resp.Items, f.view(c, r.GetCallerId()))
	}
	return resp, nil
}

func (f *fakeMessaging) SendMessage(_ context.Context, r *messagingv1.SendMessageRequest) (*messagingv1.SendMessageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["SendMessage"]++
	c, err := f.conversation(r.GetConversationId(), r.GetCallerId())
	if err != nil {
		return nil, err
	}
	for _, m := range c.messages {
		if m.SenderId == r.GetCallerId() && m.ClientMsgId == r.GetClientMsgId() {
			return &messagingv1.SendMessageResponse{Message: m}, nil
		}
	}
	f.seq++
	m := &messagingv1.Message{
		Id: fmt.Sprintf("msg-%06d", f.seq), ConversationId: c.id, SenderId: r.GetCallerId(),
		Text: strings.TrimSpace(r.GetText()), ClientMsgId: r.GetClientMsgId(), CreatedAt: timestamppb.New(f.clock.Now()),
	}
	c.messages = append(c.messages, m)
	return &messagingv1.SendMessageResponse{Message: m, Created: true}, nil
}

func (f *fakeMessaging) ListMessages(_ context.Context, r *messagingv1.ListMessagesRequest) (*messagingv1.ListMessagesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListMessages"]++
	c, err := f.conversation(r.GetConversationId(), r.GetCallerId())
	if err != nil {
		return nil, err
	}
	newest := slices.Clone(c.messages)
	slices.Reverse(newest)
	items, next, err := page(newest, r.GetCursor(), r.GetLimit())
	if err != nil {
		return nil, err
	}
	return &messagingv1.ListMessagesResponse{Items: items, NextCursor: next}, nil
}

func (f *fakeMessaging) MarkRead(_ context.Context, r *messagingv1.MarkReadRequest) (*messagingv1.MarkReadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["MarkRead"]++
	c, err := f.conversation(r.GetConversationId(), r.GetCallerId())
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(c.messages, func(m *messagingv1.Message) bool { return m.Id == r.GetUpToMessageId() })
	if i < 0 {
		return nil, errs.New(errs.NotFound, "No such message in this conversation.")
	}
	c.read[r.GetCallerId()] = max(c.read[r.GetCallerId()], i+1)
	return &messagingv1.MarkReadResponse{}, nil
}
