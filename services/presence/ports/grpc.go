// Package ports holds presence-service's ports: the gRPC server implementing
// presencev1.PresenceServiceServer, and the handler of the presence events on the bus. Both
// convert between their wire types and the application's, and call the application.
package ports

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// GRPCServer serves the PresenceService contract on top of the application. Errors come back
// from the application as *errs.Error; the platform's gRPC server sends their code in the
// status details.
type GRPCServer struct {
	presencev1.UnimplementedPresenceServiceServer
	app *app.Application
}

var _ presencev1.PresenceServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC face of a.
func NewGRPCServer(a *app.Application) *GRPCServer { return &GRPCServer{app: a} }

// timestamp converts t, leaving a zero time unset.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// GetPresence tells whether the user is online and when they were last seen.
func (s *GRPCServer) GetPresence(ctx context.Context, req *presencev1.GetPresenceRequest) (*presencev1.GetPresenceResponse, error) {
	p, err := s.app.GetPresence.Handle(ctx, app.GetPresence{UserID: req.GetUserId()})
	if err != nil {
		return nil, err
	}
	return &presencev1.GetPresenceResponse{Online: p.Online, LastSeenAt: timestamp(p.LastSeenAt)}, nil
}

// ListSessions lists the user's sessions, newest first.
func (s *GRPCServer) ListSessions(ctx context.Context, req *presencev1.ListSessionsRequest) (*presencev1.ListSessionsResponse, error) {
	p, err := s.app.ListSessions.Handle(ctx, app.ListSessions{UserID: req.GetUserId(), Cursor: req.GetCursor(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, err
	}
	items := make([]*presencev1.Session, len(p.Sessions))
	for i, ses := range p.Sessions {
		items[i] = toProtoSession(ses)
	}
	return &presencev1.ListSessionsResponse{Items: items, NextCursor: p.NextCursor}, nil
}

func toProtoSession(s domain.Session) *presencev1.Session {
	return &presencev1.Session{
		ConnectionId:   s.ConnectionID,
		InstanceId:     s.InstanceID,
		ConnectedAt:    timestamp(s.ConnectedAt),
		DisconnectedAt: timestamp(s.DisconnectedAt),
	}
}
