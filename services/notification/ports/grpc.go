// Package ports holds notification-service's ports: the gRPC server implementing
// notificationv1.NotificationServiceServer (the inbox API the gateway calls), and the event
// consumer, which registers the service's handlers on a platform/events Router.
package ports

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/services/notification/app"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// GRPCServer serves the NotificationService contract on top of the application. It converts
// between protobuf messages and the application's types; the application validates every
// field and returns *errs.Error, whose code the platform's gRPC server sends in the status
// details.
type GRPCServer struct {
	notificationv1.UnimplementedNotificationServiceServer
	app *app.Application
}

var _ notificationv1.NotificationServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

func toProto(ns []domain.Notification) []*notificationv1.Notification {
	out := make([]*notificationv1.Notification, len(ns))
	for i, n := range ns {
		out[i] = &notificationv1.Notification{
			Seq:       n.Seq,
			Id:        n.EventID,
			Type:      n.Type,
			CreatedAt: timestamppb.New(n.CreatedAt),
			Data:      n.Data,
			Read:      n.Read,
		}
	}
	return out
}

// ListNotifications lists a user's inbox newest first, a page at a time.
func (s *GRPCServer) ListNotifications(ctx context.Context, req *notificationv1.ListNotificationsRequest) (*notificationv1.ListNotificationsResponse, error) {
	p, err := s.app.ListNotifications.Handle(ctx, app.ListNotifications{
		UserID: req.GetUserId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	return &notificationv1.ListNotificationsResponse{Items: toProto(p.Items), NextCursor: p.NextCursor}, nil
}

// ListSince returns the notifications after a seq, oldest first.
func (s *GRPCServer) ListSince(ctx context.Context, req *notificationv1.ListSinceRequest) (*notificationv1.ListSinceResponse, error) {
	r, err := s.app.ListSince.Handle(ctx, app.ListSince{
		UserID: req.GetUserId(), AfterSeq: req.GetAfterSeq(), Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	return &notificationv1.ListSinceResponse{Items: toProto(r.Items), HasMore: r.HasMore}, nil
}

// UnreadCount counts the notifications above the read marker.
func (s *GRPCServer) UnreadCount(ctx context.Context, req *notificationv1.UnreadCountRequest) (*notificationv1.UnreadCountResponse, error) {
	u, err := s.app.UnreadCount.Handle(ctx, app.UnreadCount{UserID: req.GetUserId()})
	if err != nil {
		return nil, err
	}
	return &notificationv1.UnreadCountResponse{Count: u.Count, LastSeq: u.LastSeq}, nil
}

// MarkRead moves the read marker forward.
func (s *GRPCServer) MarkRead(ctx context.Context, req *notificationv1.MarkReadRequest) (*notificationv1.MarkReadResponse, error) {
	if _, err := s.app.MarkRead.Handle(ctx, app.MarkRead{UserID: req.GetUserId(), UpToSeq: req.GetUpToSeq()}); err != nil {
		return nil, err
	}
	return &notificationv1.MarkReadResponse{}, nil
}
