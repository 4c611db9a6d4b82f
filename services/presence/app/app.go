// Package app is presence-service's application layer: the use cases (recording connects and
// disconnects from events, answering whether a user is online and when they were last seen,
// listing their session history, closing the sessions of connections that ended unreported,
// purging old history) as one plain struct of handlers, the ports it needs (the session store
// and the live presence entries) as small interfaces it owns, and the mapping of domain errors
// to platform error codes at its edge: every error a handler returns is an *errs.Error.
package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// Handler is one use case: it handles a command or query Q and answers R.
type Handler[Q, R any] interface {
	Handle(ctx context.Context, q Q) (R, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[Q, R any] func(ctx context.Context, q Q) (R, error)

// Handle calls f.
func (f HandlerFunc[Q, R]) Handle(ctx context.Context, q Q) (R, error) { return f(ctx, q) }

// None is the query of a use case that takes nothing, and the answer of one that answers
// nothing but success.
type None struct{}

// Application lists the use cases of presence-service. Every handler returns errors as
// *errs.Error (validation_failed with field pointers; internal for everything unexpected).
type Application struct {
	// From the presence events.
	RecordConnected    Handler[domain.Event, None]
	RecordDisconnected Handler[domain.Event, None]

	// Queries.
	GetPresence  Handler[GetPresence, Presence]
	ListSessions Handler[ListSessions, Page]

	// Housekeeping, run periodically; they answer how many sessions they changed.
	CloseEndedSessions Handler[None, int64]
	PurgeHistory       Handler[None, int64]
}

// Store is the session history; adapters.Store implements it. Its writes are idempotent and
// commutative (see domain.Session).
type Store interface {
	RecordConnected(ctx context.Context, s domain.Session) error
	RecordDisconnected(ctx context.Context, s domain.Session) error
	ListSessions(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.SessionPage, error)
	Activity(ctx context.Context, userID string) (domain.Activity, error)
	OpenSessions(ctx context.Context, startedBy time.Time, afterID string, limit int) ([]domain.Session, error)
	CloseSessions(ctx context.Context, ends []domain.End) (int64, error)
	PurgeEnded(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

// PresenceStore is the live presence the gateways keep: platform/presence's Memory and Redis
// stores implement it.
type PresenceStore interface {
	Online(ctx context.Context, userID string) (bool, error)
	presence.Liveness
}

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// PresenceTTL is the TTL with which the gateways register connections (their heartbeat
	// renews it); it sizes the estimate of when an unreported connection ended. Default 60s.
	PresenceTTL time.Duration
	// SweepGrace is how old a session must be before the sweeper may close it: a connection
	// whose connect event overtook its presence registration is not closed by mistake.
	// Default PresenceTTL.
	SweepGrace time.Duration
	// SweepBatch is how many open sessions one sweeper step checks (one presence round trip,
	// one transaction). Default 500.
	SweepBatch int
	// Retention is how long ended sessions are kept; negative keeps them forever. Default
	// 90 days.
	Retention time.Duration
	// PurgeBatch bounds the rows one purge statement deletes. Default 1000.
	PurgeBatch int
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
}

// Defaults.
const (
	DefaultPresenceTTL = 60 * time.Second
	DefaultSweepBatch  = 500
	DefaultRetention   = 90 * 24 * time.Hour
	DefaultPurgeBatch  = 1000
)

// Deps are the adapters the application runs on; all are required.
type Deps struct {
	Store    Store
	Presence PresenceStore
}

// New builds the application.
func New(cfg Config, d Deps, log *slog.Logger) (*Application, error) {
	if cfg.PresenceTTL == 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.SweepGrace == 0 {
		cfg.SweepGrace = cfg.PresenceTTL
	}
	if cfg.SweepBatch == 0 {
		cfg.SweepBatch = DefaultSweepBatch
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.PurgeBatch == 0 {
		cfg.PurgeBatch = DefaultPurgeBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.PresenceTTL < 0 || cfg.SweepGrace < 0:
		return nil, errors.New("presence app: PresenceTTL and SweepGrace must be positive")
	case cfg.SweepBatch < 0 || cfg.PurgeBatch < 0:
		return nil, errors.New("presence app: SweepBatch and PurgeBatch must be positive")
	case d.Store == nil || d.Presence == nil:
		return nil, errors.New("presence app: Store and Presence are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{
		store:    d.Store,
		presence: d.Presence,
		cfg:      cfg,
		now:      func() time.Time { return cfg.Now().UTC().Truncate(time.Microsecond) },
		log:      log,
	}
	return &Application{
		RecordConnected:    edge(s.recordConnected),
		RecordDisconnected: edge(s.recordDisconnected),
		GetPresence:        edge(s.getPresence),
		ListSessions:       edge(s.listSessions),
		CloseEndedSessions: edge(s.closeEndedSessions),
		PurgeHistory:       edge(s.purgeHistory),
	}, nil
}

// service holds what the use cases share; each use case is one of its methods.
type service struct {
	store    Store
	presence PresenceStore
	cfg      Config
	// now is the clock at the stores' precision (UTC microseconds).
	now func() time.Time
	log *slog.Logger
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
