// Package app is notification-service's application layer: the event handler that turns
// domain events into inbox notifications and routes them to the gateways of online recipients
// (the double hop), and the inbox queries, as one plain struct of use cases. The ports it
// needs from the outside (the inbox store, the follower stream, username lookup, presence
// routing, the push channel) are small interfaces it owns. Query errors leave it as
// *errs.Error; the event handler's errors are for the events router (see HandleEvent).
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// Handler is one use case: it handles a command or query Q and answers R.
type Handler[Q, R any] interface {
	Handle(ctx context.Context, q Q) (R, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[Q, R any] func(ctx context.Context, q Q) (R, error)

// Handle calls f.
func (f HandlerFunc[Q, R]) Handle(ctx context.Context, q Q) (R, error) { return f(ctx, q) }

// None is the answer of a use case that answers nothing but success.
type None struct{}

// Application lists the use cases of notification-service.
type Application struct {
	// The inbox. Every handler returns errors as *errs.Error (validation_failed with field
	// pointers; internal for everything unexpected). A user with no notifications has an
	// empty inbox, not a missing one.
	ListNotifications Handler[ListNotifications, Page]
	ListSince         Handler[ListSince, domain.Since]
	UnreadCount       Handler[UnreadCount, domain.Unread]
	MarkRead          Handler[MarkRead, None]

	// HandleEvent consumes one domain event from topics "users", "posts" and "messages":
	// post.created notifies every follower of the author, post.liked and post.commented the
	// post's author (not when the actor is the author), user.followed the followee,
	// message.sent every participant of the conversation but the sender; other types are
	// acked untouched. Each batch of recipients is stored in one inbox transaction, then pushed to
	// the gateways of those online. It is idempotent: a redelivered event stores nothing new
	// and pushes the stored notifications again with their original seqs. An error marked
	// events.Permanent (a payload that does not fit its type) sends the event to the dead
	// letters at once; any other error is retried by the router. A failed push is no error.
	HandleEvent events.Handler
}

// Store is the durable inbox; adapters.Store implements it (see its methods for the exact
// contract: per-user strictly increasing seqs, at most one notification per user and event).
type Store interface {
	// Deliver stores d for each of userIDs (at most domain.MaxDeliveryBatch) in one
	// transaction and returns every one of those users' notification of d's event — new or
	// stored by an earlier delivery — and how many are new.
	Deliver(ctx context.Context, d domain.Draft, userIDs []string) ([]domain.Notification, int, error)
	List(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.Page, error)
	Since(ctx context.Context, userID string, afterSeq int64, limit int) (domain.Since, error)
	Unread(ctx context.Context, userID string) (domain.Unread, error)
	MarkRead(ctx context.Context, userID string, upTo int64) (int64, error)
}

// Followers walks the followers of a user; the process adapts user-service's StreamFollowerIDs
// to it. Each calls batch with successive batches of follower ids (bounded in size; never all
// at once) until every follower was handed over, and returns batch's first error. The slice
// passed to batch is not retained. A user that does not exist (any more) should be reported
// as having no followers, not as an error, since retrying will not change that.
type Followers interface {
	Each(ctx context.Context, userID string, batch func(ids []string) error) error
}

// Users looks up usernames; the process adapts user-service's GetUsers to it. The answer maps
// the ids of existing users to their usernames; unknown ids are absent, not an error.
type Users interface {
	Usernames(ctx context.Context, ids []string) (map[string]string, error)
}

// Routes finds where online users are connected: for each of userIDs with live connections,
// the distinct gateway instances holding them (offline users absent), in one round trip.
// platform/presence's Store implements it.
type Routes interface {
	Routes(ctx context.Context, userIDs []string) (map[string][]string, error)
}

// Pusher publishes a message to one gateway instance (best effort);
// platform/push's Publisher implements it.
type Pusher interface {
	Publish(ctx context.Context, instanceID string, msg []byte) error
}

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// FanoutBatch is the most recipients one inbox transaction serves; a follower batch
	// larger than this is cut. 1..domain.MaxDeliveryBatch; default 1000.
	FanoutBatch int
	// PushTimeout bounds the routing of one stored batch: the presence lookup and the
	// publishes. Default 2s.
	PushTimeout time.Duration
	// TracerProvider makes the per-batch delivery spans; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the service's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into the pushed batches; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// DefaultFanoutBatch is the default of Config.FanoutBatch.
const DefaultFanoutBatch = 1000

// Deps are the adapters the application runs on; all are required.
type Deps struct {
	Store     Store
	Followers Followers
	Users     Users
	Routes    Routes
	Pusher    Pusher
}

// New builds the application.
func New(cfg Config, d Deps, log *slog.Logger) (*Application, error) {
	if cfg.FanoutBatch == 0 {
		cfg.FanoutBatch = DefaultFanoutBatch
	}
	if cfg.FanoutBatch < 1 || cfg.FanoutBatch > domain.MaxDeliveryBatch {
		return nil, errors.New("notification app: FanoutBatch must be between 1 and 5000")
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = 2 * time.Second
	}
	if cfg.PushTimeout < 0 {
		return nil, errors.New("notification app: PushTimeout must be positive")
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	if d.Store == nil || d.Followers == nil || d.Users == nil || d.Routes == nil || d.Pusher == nil {
		return nil, errors.New("notification app: Store, Followers, Users, Routes and Pusher are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{
		store:       d.Store,
		followers:   d.Followers,
		users:       d.Users,
		routes:      d.Routes,
		pusher:      d.Pusher,
		batch:       cfg.FanoutBatch,
		pushTimeout: cfg.PushTimeout,
		tracer:      cfg.TracerProvider.Tracer(instrumentationName),
		prop:        cfg.Propagator,
		metrics:     newMetrics(cfg.MeterProvider, log),
		log:         log,
	}
	return &Application{
		ListNotifications: edge(s.listNotifications),
		ListSince:         edge(s.listSince),
		UnreadCount:       edge(s.unreadCount),
		MarkRead:          edge(s.markRead),
		HandleEvent:       s.handleEvent,
	}, nil
}

const instrumentationName = "github.com/piazza-social/piazza/services/notification"

// service holds what the use cases share; each use case is one of its methods.
type service struct {
	store       Store
	followers   Followers
	users       Users
	routes      Routes
	pusher      Pusher
	batch       int
	pushTimeout time.Duration
	tracer      trace.Tracer
	prop        propagation.TextMapPropagator
	metrics     metrics
	log         *slog.Logger
}

// edge wraps a use case so that its errors leave the application as *errs.Error.
func edge[Q, R any](fn func(context.Context, Q) (R, error)) Handler[Q, R] {
	return HandlerFunc[Q, R](func(ctx context.Context, q Q) (R, error) {
		r, err := fn(ctx, q)
		if err != nil {
			var zero R
			return zero, toError(err)
		}
		return r, nil
	})
}
