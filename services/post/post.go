// Package post is post-service: posts (text of 1–500 characters), likes, comments, a user's
// own posts and the home timeline (the posts of the accounts one follows, built on read),
// served over gRPC (piazza.post.v1.PostService). It stores its state in PostgreSQL
// (distributed mode) or SQLite (embedded mode) through platform/database, and emits
// post.created, post.deleted, post.liked and post.commented through a transactional outbox
// on topic "posts", keyed by the post author's id.
//
// The service is assembled from its layers: domain (the rules), app (the use cases),
// adapters (the SQL store, the follow graph read from user-service) and ports (the gRPC
// server). It has no background work of its own: the process runs the outbox's forwarder.
package post

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/post/adapters"
	"github.com/piazza-social/piazza/services/post/app"
	"github.com/piazza-social/piazza/services/post/ports"
)

// Migrations is the service's schema (migration set "post"). The database must also carry
// the outbox's migrations (outbox.Migrations), since events are written in the same
// transactions.
var Migrations = adapters.Migrations

// Migrate applies Migrations to db.
func Migrate(ctx context.Context, db *database.DB) error {
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("post: migrate: %w", err)
	}
	return nil
}

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
}

// Deps are what the service runs on; all are required.
type Deps struct {
	// DB holds the service's tables (Migrations applied) and the outbox's.
	DB *database.DB
	// Outbox records events in the store's transactions; platform/events/outbox's *Outbox.
	Outbox adapters.EventOutbox
	// Follows tells whom a user follows, for the home timeline: adapters.NewUserFollowGraph
	// over user-service's gRPC client.
	Follows app.FollowGraph
}

// Service is a post-service instance.
type Service struct {
	app  *app.Application
	grpc *ports.GRPCServer
}

// New builds the service. It does no I/O; deps.DB must already be migrated.
func New(cfg Config, deps Deps, log *slog.Logger) (*Service, error) {
	if deps.DB == nil || deps.Outbox == nil || deps.Follows == nil {
		return nil, errors.New("post: Deps.DB, Deps.Outbox and Deps.Follows are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("service", "post"))
	store := adapters.NewStore(deps.DB, deps.Outbox)
	a, err := app.New(app.Config{Now: cfg.Now}, app.Deps{Store: store, Follows: deps.Follows}, log)
	if err != nil {
		return nil, fmt.Errorf("post: %w", err)
	}
	return &Service{app: a, grpc: ports.NewGRPCServer(a)}, nil
}

// Register registers the PostService gRPC server on r (an *rpc.Server).
func (s *Service) Register(r grpc.ServiceRegistrar) {
	postv1.RegisterPostServiceServer(r, s.grpc)
}

// App returns the application, for in-process callers and tests.
func (s *Service) App() *app.Application { return s.app }
