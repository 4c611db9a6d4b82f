package gateway

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/web"
)

// The direct-message handlers: conversations and their messages from messaging-service, which
// knows users by id only. The gateway turns the usernames of a new conversation into ids, and
// resolves the users a response names with one user-service GetUsers call per response.
//
// For a caller who is not one of its participants a conversation does not exist:
// messaging-service answers not_found, and the gateway passes that on unchanged, so that
// nobody learns which conversation ids exist.

// participantLookups bounds the concurrent user-service calls that resolve the usernames of
// one new conversation.
//
// The usernames are resolved with GetUser, one call per name, rather than with a batch lookup
// by username (which user-service's contract does not have): a conversation is created far
// less often than it is read, nearly always with one other user — one call either way — and a
// group's at most 49 names take at most ceil(49/8) = 7 round trips this way. That did not
// justify a new user-service RPC with its store queries on two engines. GetUser's not_found
// also names exactly the username that is unknown, which the answer points at.
const participantLookups = 8

func (s *Service) createConversation(w http.ResponseWriter, r *http.Request) error {
	var req createConversationRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	caller := callerFrom(ctx).UserID
	users, err := s.lookupParticipants(ctx, req.Participants)
	if err != nil {
		return err
	}
	peers := make([]string, 0, len(users))
	for _, u := range users {
		if u.GetId() != caller {
			peers = append(peers, u.GetId())
		}
	}
	switch {
	case len(peers) == 0:
		return errs.Validation("The request is invalid.", errs.Field("/participants", "must name at least one user besides yourself"))
	case len(peers) > maxConversationPeers:
		return errs.Validation("The request is invalid.",
			errs.Field("/participants", "must name at most "+strconv.Itoa(maxConversationPeers)+" users besides yourself"))
	}
	resp, err := s.cfg.Messaging.CreateConversation(ctx, &messagingv1.CreateConversationRequest{CallerId: caller, ParticipantIds: peers})
	if err != nil {
		return err
	}
	items, err := s.toConversations(ctx, []*messagingv1.Conversation{resp.GetConversation()}, newAuthors(users))
	if err != nil {
		return err
	}
	status := http.StatusOK // the one-to-one conversation existed already
	if resp.GetCreated() {
		status = http.StatusCreated
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, status, items[0])
	return nil
}

// lookupParticipants resolves the usernames of a new conversation (already shape-checked),
// each distinct name once, at most participantLookups at a time. It returns the users in the
// order of their first mention. Usernames that name nobody make one validation_failed answer
// with a pointer to each ("/participants/2"): the client can correct them; any other failure
// is returned as it is.
func (s *Service) lookupParticipants(ctx context.Context, names []string) ([]*userv1.User, error) {
	type entry struct {
		name  string
		index int // of the first mention, for the pointer
	}
	var distinct []entry
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		n = strings.ToLower(n) // usernames are case-insensitive
		if !seen[n] {
			seen[n] = true
			distinct = append(distinct, entry{n, i})
		}
	}
	users := make([]*userv1.User, len(distinct))
	unknown := make([]bool, len(distinct))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(participantLookups)
	for i, e := range distinct {
		g.Go(func() error {
			resp, err := s.users.GetUser(gctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: e.name}})
			switch {
			case errs.CodeOf(err) == errs.NotFound:
				unknown[i] = true
				return nil
			case err != nil:
				return err
			}
			users[i] = resp.GetUser()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var c fieldCheck
	for i, e := range distinct {
		if unknown[i] {
			c.add("/participants/"+strconv.Itoa(e.index), "no such user")
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return users, nil
}

func (s *Service) listConversations(w http.ResponseWriter, r *http.Request) error {
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Messaging.ListConversations(ctx, &messagingv1.ListConversationsRequest{
		CallerId: callerFrom(ctx).UserID, Cursor: q.Cursor, Limit: int32(q.Limit),
	})
	if err != nil {
		return err
	}
	items, err := s.toConversations(ctx, resp.GetItems(), nil)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}

// toConversations maps conversations to their response, resolving every user they name that
// known does not hold with one lookup for all of them.
func (s *Service) toConversations(ctx context.Context, convs []*messagingv1.Conversation, known authors) ([]conversationResponse, error) {
	var missing []string
	for _, id := range userIDs(convs) {
		if _, ok := known[id]; !ok {
			missing = append(missing, id)
		}
	}
	a, err := s.resolveAuthors(ctx, missing)
	if err != nil {
		return nil, err
	}
	maps.Copy(a, known)
	items := make([]conversationResponse, 0, len(convs))
	for _, c := range convs {
		items = append(items, toConversation(c, a))
	}
	return items, nil
}

func (s *Service) sendMessage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathConversationID(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req sendMessageRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Messaging.SendMessage(ctx, &messagingv1.SendMessageRequest{
		CallerId: callerFrom(ctx).UserID, ConversationId: id, Text: req.Text, ClientMsgId: req.ClientMsgID,
	})
	if err != nil {
		return err
	}
	a, err := s.resolveAuthors(ctx, []string{resp.GetMessage().GetSenderId()})
	if err != nil {
		return err
	}
	// A retry (same client_msg_id) gets the message its first attempt sent, with 200 rather
	// than 201: nothing new was created, and the client can tell.
	status := http.StatusOK
	if resp.GetCreated() {
		status = http.StatusCreated
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, status, toMessage(resp.GetMessage(), a))
	return nil
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) error {
	id, err := pathConversationID(r.PathValue("id"))
	if err != nil {
		return err
	}
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Messaging.ListMessages(ctx, &messagingv1.ListMessagesRequest{
		CallerId: callerFrom(ctx).UserID, ConversationId: id, Cursor: q.Cursor, Limit: int32(q.Limit),
	})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(resp.GetItems()))
	for _, m := range resp.GetItems() {
		ids = append(ids, m.GetSenderId())
	}
	a, err := s.resolveAuthors(ctx, ids)
	if err != nil {
		return err
	}
	items := make([]messageResponse, 0, len(resp.GetItems()))
	for _, m := range resp.GetItems() {
		items = append(items, toMessage(m, a))
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}

func (s *Service) markConversationRead(w http.ResponseWriter, r *http.Request) error {
	id, err := pathConversationID(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req markConversationReadRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Messaging.MarkRead(ctx, &messagingv1.MarkReadRequest{
		CallerId: callerFrom(ctx).UserID, ConversationId: id, UpToMessageId: req.UpToMessageID,
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
