// Package messaging is messaging-service: conversations (one-to-one, unique per pair, and
// groups of up to 50) and their messages (1–4000 characters, idempotent sends by client
// message id, time-sortable UUIDv7 ids, history newest first with opaque cursors, read markers
// and unread counts, conversation lists by last activity), served over gRPC
// (piazza.messaging.v1.MessagingService). For anyone but its participants a conversation does
// not exist.
//
// It stores its state in one of two stores behind one port (adapters): SQLite in embedded mode
// (platform/database; events through the platform's transactional outbox) or Cassandra in
// distributed mode (platform/cassandra; events in a pending table written in the message's
// logged batch). Every stored message emits message.sent on topic "messages", keyed by the
// conversation id; Run forwards the events to the bus, so none is lost.
//
// The service is assembled from its layers: domain (the rules), app (the use cases), adapters
// (the two stores and the Cassandra forwarder) and ports (the gRPC server).
package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/services/messaging/adapters"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/ports"
)

// Migrations is the service's relational schema (migration set "messaging", SQLite). The
// database must also carry the outbox's migrations (outbox.Migrations), since events are
// written in the same transactions; Migrate applies both.
var Migrations = adapters.Migrations

// CassandraMigrations is the service's Cassandra schema (migration set "messaging"), applied
// to the service's keyspace by the messaging-migration job with cassandra.Migrate before the
// service starts.
var CassandraMigrations = adapters.CassandraMigrations

// Migrate applies Migrations and outbox.Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	for _, set := range []database.MigrationSet{Migrations, outbox.Migrations} {
		if _, err := database.Migrate(ctx, db, set); err != nil {
			return fmt.Errorf("messaging: migrate: %w", err)
		}
	}
	return nil
}

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
	// BucketSize is the time span of a Cassandra messages partition; default
	// adapters.DefaultBucketSize (10 days). Part of the data model: never change it for a
	// keyspace that holds messages. Ignored on SQLite.
	BucketSize time.Duration
	// SerialConsistency of Cassandra's uniqueness claims and forwarder lease; default
	// gocql.Serial (see adapters.CassandraConfig). Ignored on SQLite.
	SerialConsistency gocql.Consistency
	// ForwarderOwner names this process in the Cassandra forwarder's lease; default the host
	// name and a random suffix. Ignored on SQLite.
	ForwarderOwner string
	// ForwarderPollInterval is how often the forwarder looks for events without being woken:
	// a send wakes the forwarder of its own process as soon as it is stored, so polling only
	// finds events stored by other processes (or before a restart). Default 1 s.
	ForwarderPollInterval time.Duration
	// Propagator writes the trace context of a send into its event; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
	// MeterProvider makes the forwarder's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Deps are what the service runs on: exactly one store (DB or Cassandra), and the bus.
type Deps struct {
	// DB is the embedded store: a SQLite database with Migrations and outbox.Migrations applied.
	DB *database.DB
	// Cassandra is the distributed store: a session of the service's keyspace (from
	// cassandra.Open with Config.Keyspace set) with CassandraMigrations applied.
	Cassandra *gocql.Session
	// Publisher receives the events Run forwards: the process's events.Bus. Required.
	Publisher message.Publisher
}

// Service is a messaging-service instance.
type Service struct {
	app  *app.Application
	grpc *ports.GRPCServer
	run  func(ctx context.Context) error
}

// New builds the service. It does no I/O; the store must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if (deps.DB == nil) == (deps.Cassandra == nil) {
		return nil, errors.New("messaging: exactly one of Deps.DB and Deps.Cassandra is required")
	}
	if deps.Publisher == nil {
		return nil, errors.New("messaging: Deps.Publisher is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "messaging"))

	var (
		store app.Store
		run   func(ctx context.Context) error
	)
	if deps.DB != nil {
		if deps.DB.Dialect() != database.SQLite {
			return nil, fmt.Errorf("messaging: the relational store is SQLite (embedded mode), not %s; distributed mode uses Cassandra", deps.DB.Dialect())
		}
		ob, err := outbox.New(outbox.Config{DB: deps.DB, Propagator: cfg.Propagator})
		if err != nil {
			return nil, fmt.Errorf("messaging: %w", err)
		}
		fwd, err := outbox.NewForwarder(outbox.ForwarderConfig{
			Outbox: ob, Publisher: deps.Publisher, PollInterval: cfg.ForwarderPollInterval, MeterProvider: cfg.MeterProvider,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("messaging: %w", err)
		}
		store, run = adapters.NewSQLStore(deps.DB, ob), fwd.Run
	} else {
		st, err := adapters.NewCassandraStore(adapters.CassandraConfig{
			Session: deps.Cassandra, BucketSize: cfg.BucketSize, SerialConsistency: cfg.SerialConsistency, Propagator: cfg.Propagator,
		})
		if err != nil {
			return nil, fmt.Errorf("messaging: %w", err)
		}
		fwd, err := adapters.NewCassandraForwarder(adapters.ForwarderConfig{
			Store: st, Publisher: deps.Publisher, Owner: cfg.ForwarderOwner, PollInterval: cfg.ForwarderPollInterval,
			MeterProvider: cfg.MeterProvider,
		}, log)
		if err != nil {
			return nil, fmt.Errorf("messaging: %w", err)
		}
		store, run = st, fwd.Run
	}
	a, err := app.New(app.Config{Now: cfg.Now}, app.Deps{Store: store}, log)
	if err != nil {
		return nil, fmt.Errorf("messaging: %w", err)
	}
	return &Service{app: a, grpc: ports.NewGRPCServer(a), run: run}, nil
}

// Register registers the MessagingService gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	messagingv1.RegisterMessagingServiceServer(r, s.grpc)
}

// Run forwards the service's events to the bus until ctx is cancelled, then returns nil: the
// outbox forwarder on SQLite, the pending-events forwarder on Cassandra (one forwarding
// process at a time, by lease). Store and bus failures are retried, never returned. Run it
// once per Service, under the process's lifecycle group.
func (s *Service) Run(ctx context.Context) error { return s.run(ctx) }

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }
