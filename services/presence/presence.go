// Package presence is presence-service: the durable history of the users' connections to the
// gateways, and whether a user is online now, served over gRPC
// (piazza.presence.v1.PresenceService).
//
// The gateways keep the live presence entries (platform/presence: Redis distributed, memory
// embedded) and publish presence.connected / presence.disconnected on topic "presence". The
// service consumes them as consumer group "presence-service" and records each connection as a
// session in PostgreSQL (distributed mode) or SQLite (embedded mode) through
// platform/database. A crashed gateway publishes no disconnect: Run periodically closes the
// recorded sessions whose connection is no longer live in the presence store, at an estimated
// end (see domain.EstimatedEnd), and purges old history.
//
// The service is assembled from its layers: domain (the rules), app (the use cases),
// adapters (the SQL store) and ports (gRPC and the event handler).
package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/grpc"

	"github.com/piazza-social/piazza/api/eventsv1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/presence/adapters"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/ports"
)

// Migrations is the service's schema (migration set "presence").
var Migrations = adapters.Migrations

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("presence: migrate: %w", err)
	}
	return nil
}

// ConsumerGroup is the consumer group of the service's event handler.
const ConsumerGroup = "presence-service"

// HandlerName names the event handler in the router's logs, metrics and dead letters.
const HandlerName = "presence-service.sessions"

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// PresenceTTL is the TTL with which the gateways register connections; it must match
	// theirs. It sizes the estimated end of a connection that ended unreported. Default 60s.
	PresenceTTL time.Duration
	// SweepInterval is how often Run closes the sessions of connections that are no longer
	// live and purges old history. Default 1 minute.
	SweepInterval time.Duration
	// SweepGrace is how old an open session must be before a sweep may close it. Default
	// PresenceTTL.
	SweepGrace time.Duration
	// SweepBatch is how many open sessions one sweep step checks. Default 500.
	SweepBatch int
	// Retention is how long ended sessions are kept; negative keeps them forever. Default
	// 90 days.
	Retention time.Duration
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
}

// Deps are what the service runs on; all are required.
type Deps struct {
	// DB holds the service's tables (Migrations applied).
	DB *database.DB
	// Presence is the live presence the gateways keep: platform/presence's *Redis or *Memory
	// (the same store the gateways write).
	Presence app.PresenceStore
}

// Service is a presence-service instance.
type Service struct {
	app  *app.Application
	grpc *ports.GRPCServer
	cfg  Config
	log  *slog.Logger
}

// New builds the service. It does no I/O; deps.DB must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if deps.DB == nil || deps.Presence == nil {
		return nil, errors.New("presence: Deps.DB and Deps.Presence are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "presence"))
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.SweepInterval < 0 {
		return nil, errors.New("presence: SweepInterval must be positive")
	}
	a, err := app.New(app.Config{
		PresenceTTL: cfg.PresenceTTL,
		SweepGrace:  cfg.SweepGrace,
		SweepBatch:  cfg.SweepBatch,
		Retention:   cfg.Retention,
		Now:         cfg.Now,
	}, app.Deps{Store: adapters.NewStore(deps.DB), Presence: deps.Presence}, log)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	return &Service{app: a, grpc: ports.NewGRPCServer(a), cfg: cfg, log: log}, nil
}

// Register registers the PresenceService gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	presencev1.RegisterPresenceServiceServer(r, s.grpc)
}

// Subscribers gives the subscriber of a consumer group; events.Bus implements it.
type Subscribers interface {
	Subscriber(group string) (message.Subscriber, error)
}

// AddHandlers adds the service's event handler (HandlerName, on topic "presence", as consumer
// group ConsumerGroup) to r. Call it before r runs.
func (s *Service) AddHandlers(r *events.Router, bus Subscribers) error {
	sub, err := bus.Subscriber(ConsumerGroup)
	if err != nil {
		return fmt.Errorf("presence: subscriber: %w", err)
	}
	if err := r.AddHandler(HandlerName, eventsv1.TopicPresence, sub, s.Handler()); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	return nil
}

// Handler returns the event handler of topic "presence" (what AddHandlers registers).
func (s *Service) Handler() events.Handler { return ports.EventHandler(s.app) }

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }

// Run sweeps now and every SweepInterval until ctx is cancelled, then returns nil: it closes
// the sessions of connections that are no longer live and purges old history. A failed sweep
// is logged and retried at the next tick; it never stops the service.
func (s *Service) Run(ctx context.Context) error {
	ticker := time.NewTicker(s.cfg.SweepInterval)
	defer ticker.Stop()
	for {
		s.sweep(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (s *Service) sweep(ctx context.Context) {
	closed, err := s.app.CloseEndedSessions.Handle(ctx, app.None{})
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.WarnContext(ctx, "closing ended sessions failed", slog.String("error", err.Error()), slog.Int64("closed", closed))
	case closed > 0:
		s.log.InfoContext(ctx, "closed sessions of connections that ended unreported", slog.Int64("sessions", closed))
	}
	if _, err := s.app.PurgeHistory.Handle(ctx, app.None{}); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "purging old sessions failed", slog.String("error", err.Error()))
	}
}
