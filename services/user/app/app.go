// Package app is user-service's application layer: the use cases (sign-up, login, token
// refresh and logout, session checks, profiles, the follow graph) as one plain struct of
// handlers, the ports it needs from the outside (store, password hasher, token issuer, key
// publisher) as small interfaces it owns, and the mapping of domain errors to platform error
// codes at its edge: every error a handler returns is an *errs.Error.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/user/domain"
)

// Producer is the producer name stamped on the events the service emits.
const Producer = "user-service"

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

// Application lists the use cases of user-service. Every handler returns errors as
// *errs.Error (codes: validation_failed with field pointers, conflict, not_found,
// unauthenticated, token_invalid; internal for everything unexpected).
type Application struct {
	// Accounts and sessions.
	SignUp       Handler[SignUp, Auth]
	Login        Handler[Login, Auth]
	Refresh      Handler[Refresh, Auth]
	Logout       Handler[Logout, None]
	CheckSession Handler[CheckSession, None]
	SigningKeys  Handler[None, []byte]

	// Profiles.
	GetUser       Handler[GetUser, domain.User]
	GetUsers      Handler[GetUsers, []domain.User]
	UpdateProfile Handler[UpdateProfile, domain.User]

	// The follow graph.
	Follow            Handler[Follow, None]
	Unfollow          Handler[Unfollow, None]
	ListFollowers     Handler[ListFollows, Page]
	ListFollowing     Handler[ListFollows, Page]
	StreamFollowerIDs Handler[StreamFollowerIDs, None]
	GetFollowedIDs    Handler[GetFollowedIDs, []string]
}

// Store is the persistence the use cases need; adapters.Store implements it. Methods that
// take events record them in the same transaction as the change, and only if the change
// happened. Errors are domain sentinels where the domain names the failure.
type Store interface {
	CreateUser(ctx context.Context, u domain.User, passwordHash string, sess domain.Session, tok domain.RefreshToken, evs ...events.Envelope) error
	UserByID(ctx context.Context, id string) (domain.User, error)
	UserByUsername(ctx context.Context, username string) (domain.User, error)
	CredentialsByUsername(ctx context.Context, username string) (domain.User, string, error)
	CredentialsByEmail(ctx context.Context, email string) (domain.User, string, error)
	UsersByIDs(ctx context.Context, ids []string) ([]domain.User, error)
	UpdateProfile(ctx context.Context, id string, p domain.ProfileUpdate, now time.Time) (domain.User, error)

	CreateSession(ctx context.Context, sess domain.Session, tok domain.RefreshToken) error
	Session(ctx context.Context, id string) (domain.Session, error)
	RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, now, expiresAt time.Time) (domain.Session, error)
	RevokeSessionByToken(ctx context.Context, hash []byte, now time.Time) error

	Follow(ctx context.Context, followerID, followeeID string, now time.Time, limit int, evs ...events.Envelope) (bool, error)
	Unfollow(ctx context.Context, followerID, followeeID string, evs ...events.Envelope) (bool, error)
	ListFollowers(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error)
	ListFollowing(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error)
	FollowerIDs(ctx context.Context, userID, after string, limit int) ([]string, error)
	FollowedIDs(ctx context.Context, followerID string) ([]string, error)
}

// PasswordHasher makes and checks password hashes; adapters.Argon2id implements it. Verify
// must compare in constant time and take as long for a wrong password as for a right one.
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(password, encoded string) (bool, error)
}

// TokenIssuer signs access tokens for a user's session; platform/auth's *Issuer implements it.
type TokenIssuer interface {
	Issue(userID, sessionID string) (token string, expiresAt time.Time, err error)
}

// KeyPublisher publishes the public keys that verify access tokens, as a JWK Set document;
// platform/auth's KeySet implements it.
type KeyPublisher interface {
	JWKS() []byte
}

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// RefreshTTL is the lifetime of a refresh token, and so how long an unused session lives.
	// Default 30 days.
	RefreshTTL time.Duration
	// Now is the clock; default time.Now. Tests move it.
	Now func() time.Time
}

// Deps are the adapters the application runs on; all are required.
type Deps struct {
	Store  Store
	Hasher PasswordHasher
	Tokens TokenIssuer
	Keys   KeyPublisher
}

// DefaultRefreshTTL is the default lifetime of refresh tokens.
const DefaultRefreshTTL = 30 * 24 * time.Hour

// New builds the application. It hashes one random password up front: a login for an unknown
// account verifies against that hash, so it costs what a login with a wrong password costs.
func New(cfg Config, d Deps, log *slog.Logger) (*Application, error) {
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.RefreshTTL < 0 {
		return nil, errors.New("user app: RefreshTTL must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if d.Store == nil || d.Hasher == nil || d.Tokens == nil || d.Keys == nil {
		return nil, errors.New("user app: Store, Hasher, Tokens and Keys are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	decoy, _ := domain.NewRefreshToken() // 256 random bits, as good as any password
	dummy, err := d.Hasher.Hash(decoy)
	if err != nil {
		return nil, fmt.Errorf("user app: hash the decoy password: %w", err)
	}
	s := &service{
		store:      d.Store,
		hasher:     d.Hasher,
		tokens:     d.Tokens,
		keys:       d.Keys,
		refreshTTL: cfg.RefreshTTL,
		now:        func() time.Time { return cfg.Now().UTC().Truncate(time.Microsecond) },
		dummyHash:  dummy,
		log:        log,
	}
	return &Application{
		SignUp:       edge(s.signUp),
		Login:        edge(s.login),
		Refresh:      edge(s.refresh),
		Logout:       edge(s.logout),
		CheckSession: edge(s.checkSession),
		SigningKeys:  edge(s.signingKeys),

		GetUser:       edge(s.getUser),
		GetUsers:      edge(s.getUsers),
		UpdateProfile: edge(s.updateProfile),

		Follow:            edge(s.follow),
		Unfollow:          edge(s.unfollow),
		ListFollowers:     edge(s.listFollowers),
		ListFollowing:     edge(s.listFollowing),
		StreamFollowerIDs: edge(s.streamFollowerIDs),
		GetFollowedIDs:    edge(s.getFollowedIDs),
	}, nil
}

// service holds what the use cases share; each use case is one of its methods.
type service struct {
	store      Store
	hasher     PasswordHasher
	tokens     TokenIssuer
	keys       KeyPublisher
	refreshTTL time.Duration
	// now is the clock at the stores' precision (UTC microseconds), so that a time handed to
	// the store compares equal to what it reads back.
	now       func() time.Time
	dummyHash string
	log       *slog.Logger
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
