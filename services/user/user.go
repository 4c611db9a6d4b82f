// Package user is user-service: accounts (sign-up, login, profiles), sessions with rotating
// refresh tokens and reuse detection, and the follow graph, served over gRPC
// (piazza.user.v1.UserService). It stores its state in PostgreSQL (distributed mode) or
// SQLite (embedded mode) through platform/database, and emits user.registered,
// user.followed and user.unfollowed through a transactional outbox on topic "users".
//
// The service is assembled from its layers: domain (the rules), app (the use cases),
// adapters (the SQL store, the argon2id hasher) and ports (the gRPC server).
package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/user/adapters"
	"github.com/piazza-social/piazza/services/user/app"
	"github.com/piazza-social/piazza/services/user/ports"
)

// Migrations is the service's schema (migration set "user"). The database must also carry
// the outbox's migrations, since events are written in the same transactions.
var Migrations = adapters.Migrations

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("user: migrate: %w", err)
	}
	return nil
}

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// PasswordHashing sets the argon2id cost of new password hashes; default m=19456 KiB,
	// t=2, p=1 (OWASP). Existing hashes keep verifying after a change.
	PasswordHashing adapters.Argon2idParams
	// RefreshTTL is the lifetime of a refresh token; a session ends RefreshTTL after its last
	// refresh. Default 30 days.
	RefreshTTL time.Duration
	// PurgeInterval is how often Run deletes expired sessions and refresh tokens. Default 1h.
	PurgeInterval time.Duration
	// PurgeBatch bounds the rows one purge statement deletes. Default 1000.
	PurgeBatch int
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
}

// Deps are what the service runs on; all are required.
type Deps struct {
	// DB holds the service's tables (Migrations applied) and the outbox's.
	DB *database.DB
	// Outbox records events in the store's transactions; platform/events/outbox's *Outbox.
	Outbox adapters.EventOutbox
	// Tokens signs access tokens; platform/auth's *Issuer.
	Tokens app.TokenIssuer
	// Keys publishes the verification keys as a JWK Set; platform/auth's KeySet.
	Keys app.KeyPublisher
}

// Service is a user-service instance.
type Service struct {
	app   *app.Application
	store *adapters.Store
	grpc  *ports.GRPCServer
	cfg   Config
	log   *slog.Logger
}

// New builds the service. It does no I/O beyond hashing one decoy password (see app.New);
// deps.DB must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if deps.DB == nil || deps.Outbox == nil {
		return nil, errors.New("user: Deps.DB and Deps.Outbox are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "user"))
	if cfg.PurgeInterval == 0 {
		cfg.PurgeInterval = time.Hour
	}
	if cfg.PurgeBatch == 0 {
		cfg.PurgeBatch = 1000
	}
	if cfg.PurgeInterval < 0 || cfg.PurgeBatch < 0 {
		return nil, errors.New("user: PurgeInterval and PurgeBatch must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hasher, err := adapters.NewArgon2id(cfg.PasswordHashing)
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	store := adapters.NewStore(deps.DB, deps.Outbox)
	a, err := app.New(app.Config{RefreshTTL: cfg.RefreshTTL, Now: cfg.Now}, app.Deps{
		Store: store, Hasher: hasher, Tokens: deps.Tokens, Keys: deps.Keys,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	return &Service{app: a, store: store, grpc: ports.NewGRPCServer(a), cfg: cfg, log: log}, nil
}

// Register registers the UserService gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	userv1.RegisterUserServiceServer(r, s.grpc)
}

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }

// Run deletes expired sessions and refresh tokens now and every PurgeInterval until ctx is
// cancelled, then returns nil. A failed purge is logged and retried at the next tick; it never
// stops the service.
func (s *Service) Run(ctx context.Context) error {
	ticker := time.NewTicker(s.cfg.PurgeInterval)
	defer ticker.Stop()
	for {
		s.purge(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (s *Service) purge(ctx context.Context) {
	n, err := s.store.PurgeExpired(ctx, s.cfg.Now().UTC(), s.cfg.PurgeBatch)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.WarnContext(ctx, "purging expired sessions failed", slog.String("error", err.Error()))
	case n > 0:
		s.log.InfoContext(ctx, "purged expired sessions and refresh tokens", slog.Int64("rows", n))
	}
}
