// Package notification is notification-service: it consumes the domain events of topics
// "users", "posts" and "messages" as consumer group "notification-service" (at least once,
// idempotently), stores a notification in the durable inbox of each recipient with a per-user
// strictly increasing sequence number, and routes each stored batch to the gateway instances
// holding the recipients' connections (presence lookup, then one push per instance: the double
// hop).
// It serves the inbox over gRPC (piazza.notification.v1.NotificationService). The inbox lives
// in PostgreSQL (distributed mode) or SQLite (embedded mode) through platform/database.
//
// The service is assembled from its layers: domain (who is told, what a notification says,
// the inbox rules), app (the event handler and the inbox queries), adapters (the SQL inbox
// store) and ports (the gRPC server and the event consumer).
package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/push"
	"github.com/piazza-social/piazza/services/notification/adapters"
	"github.com/piazza-social/piazza/services/notification/app"
	"github.com/piazza-social/piazza/services/notification/ports"
)

// Migrations is the service's schema (migration set "notification"): the inbox. The service
// needs no other set (no outbox, no dedupe table: the inbox's own unique key makes the
// consumer idempotent).
var Migrations = adapters.Migrations

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("notification: migrate: %w", err)
	}
	return nil
}

// DefaultConsumerGroup is the consumer group of the service's event handlers.
const DefaultConsumerGroup = "notification-service"

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// ConsumerGroup is the bus consumer group the handlers consume as; default
	// DefaultConsumerGroup. Every replica uses the same group.
	ConsumerGroup string
	// FanoutBatch is the most recipients one inbox transaction (and one push per gateway)
	// serves; 1..5000, default 1000.
	FanoutBatch int
	// PushTimeout bounds the routing of one stored batch (presence lookup and publishes);
	// default 2s.
	PushTimeout time.Duration
	// UsernameCacheSize is the most actor usernames remembered between events (see
	// app.UsernameCache); default app.DefaultUsernameCacheSize.
	UsernameCacheSize int
	// TracerProvider, MeterProvider and Propagator default to the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Propagator writes the handler's trace context into every pushed batch.
	Propagator propagation.TextMapPropagator
}

// Deps are what the service runs on; all are required.
type Deps struct {
	// DB holds the inbox (Migrations applied).
	DB *database.DB
	// Followers walks an author's followers in batches: an adapter of user-service's
	// StreamFollowerIDs (see app.Followers for the contract).
	Followers app.Followers
	// Users looks up usernames: an adapter of user-service's GetUsers (see app.Users). New
	// wraps it in an app.UsernameCache.
	Users app.Users
	// Presence finds the gateway instances of online users (only Routes is used).
	Presence presence.Store
	// Push publishes a batch to one gateway instance.
	Push push.Publisher
}

// Service is a notification-service instance.
type Service struct {
	app   *app.Application
	grpc  *ports.GRPCServer
	group string
}

// New builds the service. It does no I/O; deps.DB must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if deps.DB == nil || deps.Followers == nil || deps.Users == nil || deps.Presence == nil || deps.Push == nil {
		return nil, errors.New("notification: Deps.DB, Followers, Users, Presence and Push are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "notification"))
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = DefaultConsumerGroup
	}
	users, err := app.NewUsernameCache(app.UsernameCacheConfig{
		Size:          cfg.UsernameCacheSize,
		MeterProvider: cfg.MeterProvider,
	}, deps.Users, log)
	if err != nil {
		return nil, fmt.Errorf("notification: %w", err)
	}
	a, err := app.New(app.Config{
		FanoutBatch:    cfg.FanoutBatch,
		PushTimeout:    cfg.PushTimeout,
		TracerProvider: cfg.TracerProvider,
		MeterProvider:  cfg.MeterProvider,
		Propagator:     cfg.Propagator,
	}, app.Deps{
		Store:     adapters.NewStore(deps.DB),
		Followers: deps.Followers,
		Users:     users,
		Routes:    deps.Presence,
		Pusher:    deps.Push,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("notification: %w", err)
	}
	return &Service{app: a, grpc: ports.NewGRPCServer(a), group: cfg.ConsumerGroup}, nil
}

// Register registers the NotificationService gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	notificationv1.RegisterNotificationServiceServer(r, s.grpc)
}

// AddHandlers registers the service's event handlers on router: topic "users" as handler
// "notification.users", topic "posts" as "notification.posts" and topic "messages" as
// "notification.messages", each with a subscriber of bus for the consumer group. Call it before router.Run; the router runs and stops them.
func (s *Service) AddHandlers(router *events.Router, bus events.Bus) error {
	return ports.AddEventHandlers(router, bus, s.group, s.app.HandleEvent)
}

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }
