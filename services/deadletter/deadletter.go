// Package deadletter is the dead-letter archive: it consumes the bus's dead-letter topic
// (events.DeadLetterTopic, consumer group ConsumerGroup) and keeps every dead letter in a table,
// with its original topic, the handler that gave up, the last error, the attempt count, the
// first and last failure times, all its metadata and its payload. Operators list, show, replay
// and purge the entries (`piazza dlq`); a replay publishes the original message again to its
// original topic. The number of entries never replayed is the gauge deadletter.depth, per
// original topic.
//
// Why an archive: on Kafka a topic cannot be browsed, edited or purged message by message, so
// the dead letters are copied into a store that can, on the same engines as the services
// (PostgreSQL distributed, SQLite embedded), through platform/database.
//
// The service is assembled from its layers: domain (what an entry is), app (the use cases),
// adapters (the SQL store, the republisher) and ports (the dead-letter consumer).
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/deadletter/adapters"
	"github.com/piazza-social/piazza/services/deadletter/app"
	"github.com/piazza-social/piazza/services/deadletter/ports"
)

// ConsumerGroup is the consumer group in which the archive reads the dead-letter topic.
const ConsumerGroup = "deadletter-archive"

// Migrations is the archive's schema (migration set "deadletter").
var Migrations = adapters.Migrations

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("deadletter: migrate: %w", err)
	}
	return nil
}

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// StoreRetryInitialInterval and StoreRetryMaxInterval bound the backoff with which the
	// consumer retries archiving a dead letter while the store fails. Defaults 100ms and 30s.
	StoreRetryInitialInterval time.Duration
	StoreRetryMaxInterval     time.Duration
	// ReplayBatch and PurgeBatch are how many entries a replay of all, or one purge statement,
	// handles at a time. Defaults 100 and 500.
	ReplayBatch int
	PurgeBatch  int
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
	// TracerProvider, MeterProvider and Propagator default to the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Deps are what the service runs on.
type Deps struct {
	// DB holds the archive, Migrations applied. Required.
	DB *database.DB
	// Publisher puts replayed messages back on the bus, usually the process's events.Bus.
	// Needed to replay; without it Replay and ReplayAll fail with app.ErrNoRepublisher.
	Publisher message.Publisher
	// Subscriber reads the dead-letter topic: the bus's subscriber for ConsumerGroup. Needed by
	// Run only (the `piazza dlq` command works on the archive without it); Run closes it.
	Subscriber message.Subscriber
}

// Service is a dead-letter archive instance.
type Service struct {
	app      *app.Application
	consumer *ports.Consumer
	meter    metric.Meter
	log      *slog.Logger
}

// New builds the service; it does no I/O. deps.DB must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if deps.DB == nil {
		return nil, errors.New("deadletter: Deps.DB is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "deadletter"))
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	appDeps := app.Deps{Store: adapters.NewStore(deps.DB)}
	if deps.Publisher != nil {
		rp, err := adapters.NewRepublisher(deps.Publisher)
		if err != nil {
			return nil, err
		}
		appDeps.Republisher = rp
	}
	a, err := app.New(app.Config{ReplayBatch: cfg.ReplayBatch, PurgeBatch: cfg.PurgeBatch, Now: cfg.Now}, appDeps, log)
	if err != nil {
		return nil, err
	}
	s := &Service{app: a, meter: cfg.MeterProvider.Meter("github.com/piazza-social/piazza/services/deadletter"), log: log}
	if deps.Subscriber != nil {
		s.consumer, err = ports.NewConsumer(ports.ConsumerConfig{
			Subscriber:           deps.Subscriber,
			Archiver:             a,
			RetryInitialInterval: cfg.StoreRetryInitialInterval,
			RetryMaxInterval:     cfg.StoreRetryMaxInterval,
			TracerProvider:       cfg.TracerProvider,
			Propagator:           cfg.Propagator,
		}, log)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// App returns the application: the operator's use cases, for the dlq command and tests.
func (s *Service) App() *app.Application { return s.app }

// Running is closed once Run has subscribed to the dead-letter topic (never, without
// Deps.Subscriber). A readiness check or a test waits for it: on the embedded bus a new
// consumer group starts at the end of the topic.
func (s *Service) Running() <-chan struct{} {
	if s.consumer == nil {
		return make(chan struct{})
	}
	return s.consumer.Running()
}

// Run archives dead letters until ctx is cancelled, and meanwhile reports the gauge
// deadletter.depth (entries never replayed, attribute "topic": the original topic; read from
// the store at each collection). It returns nil on cancellation, and an error without
// Deps.Subscriber, if the gauge cannot be registered, or if the subscription fails or ends.
func (s *Service) Run(ctx context.Context) error {
	if s.consumer == nil {
		return errors.New("deadletter: Run needs Deps.Subscriber")
	}
	unregister, err := s.registerDepth()
	if err != nil {
		return err
	}
	defer unregister()
	return s.consumer.Run(ctx)
}

// depthTimeout bounds the store query behind one collection of the gauge.
const depthTimeout = 5 * time.Second

func (s *Service) registerDepth() (func(), error) {
	gauge, err := s.meter.Int64ObservableGauge("deadletter.depth",
		metric.WithDescription("Archived dead letters never replayed, by original topic."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("deadletter: create depth gauge: %w", err)
	}
	// Topics seen once keep being reported, at 0 once purged, so that a series drops to zero
	// instead of vanishing at its last value.
	// Several readers (Prometheus, OTLP) may collect at once.
	var mu sync.Mutex
	seen := map[string]bool{}
	reg, err := s.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, depthTimeout)
		defer cancel()
		depth, err := s.app.Depth(ctx)
		if err != nil {
			s.log.WarnContext(ctx, "reading the dead-letter depth failed", "error", err)
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for topic := range depth {
			seen[topic] = true
		}
		for topic := range seen {
			o.ObserveInt64(gauge, depth[topic], metric.WithAttributes(attribute.String("topic", topic)))
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("deadletter: register depth gauge: %w", err)
	}
	return func() { _ = reg.Unregister() }, nil
}
