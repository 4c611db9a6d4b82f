package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/piazza-social/piazza/api/realtimev1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/web"
	"github.com/piazza-social/piazza/services/gateway/stream"
)

// The inbox and presence handlers: the caller's notifications from notification-service, and
// presence and connection history from presence-service. Every answer is the caller's own, so
// none may be cached by a shared cache.

func (s *Service) listNotifications(w http.ResponseWriter, r *http.Request) error {
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Notifications.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{
		UserId: callerFrom(ctx).UserID, Cursor: q.Cursor, Limit: int32(q.Limit),
	})
	if err != nil {
		return err
	}
	items := make([]realtimev1.Notification, 0, len(resp.GetItems()))
	for _, p := range resp.GetItems() {
		n, err := stream.NotificationFromProto(p)
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "notification with malformed data listed with empty data",
				slog.Int64("seq", p.GetSeq()), slog.String("error", err.Error()))
		}
		items = append(items, n)
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}

func (s *Service) unreadCount(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	resp, err := s.cfg.Notifications.UnreadCount(ctx, &notificationv1.UnreadCountRequest{UserId: callerFrom(ctx).UserID})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, unreadCountResponse{Count: resp.GetCount(), LastSeq: resp.GetLastSeq()})
	return nil
}

func (s *Service) markRead(w http.ResponseWriter, r *http.Request) error {
	var req markReadRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Notifications.MarkRead(ctx, &notificationv1.MarkReadRequest{UserId: callerFrom(ctx).UserID, UpToSeq: *req.UpToSeq}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) getPresence(w http.ResponseWriter, r *http.Request) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	user, err := s.users.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: username}})
	if err != nil {
		return err
	}
	resp, err := s.cfg.Presence.GetPresence(ctx, &presencev1.GetPresenceRequest{UserId: user.GetUser().GetId()})
	if err != nil {
		return err
	}
	body := presenceResponse{Online: resp.GetOnline()}
	if ts := resp.GetLastSeenAt(); ts != nil {
		t := ts.AsTime().UTC().Truncate(time.Second)
		body.LastSeenAt = &t
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, body)
	return nil
}

func (s *Service) listSessions(w http.ResponseWriter, r *http.Request) error {
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Presence.ListSessions(ctx, &presencev1.ListSessionsRequest{
		UserId: callerFrom(ctx).UserID, Cursor: q.Cursor, Limit: int32(q.Limit),
	})
	if err != nil {
		return err
	}
	items := make([]sessionResponse, 0, len(resp.GetItems()))
	for _, p := range resp.GetItems() {
		items = append(items, toSession(p))
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}
