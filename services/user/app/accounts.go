package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/user/domain"
)

// Auth is what a successful sign-up, login or refresh hands the client: the account, a
// short-lived access token for its session and the refresh token that renews it.
type Auth struct {
	User                  domain.User // with its email: the caller is the user
	SessionID             string
	AccessToken           string
	AccessTokenExpiresAt  time.Time
	RefreshToken          string
	RefreshTokenExpiresAt time.Time
}

// SignUp creates an account and logs it in.
type SignUp struct {
	Username string
	Email    string
	Password string
}

// Login starts a session; Login is a username or an email address.
type Login struct {
	Login    string
	Password string
}

// Refresh rotates a refresh token.
type Refresh struct {
	RefreshToken string
}

// Logout ends the session a refresh token belongs to.
type Logout struct {
	RefreshToken string
}

// CheckSession asks whether a session (from a verified access token) is still alive and
// belongs to the user.
type CheckSession struct {
	SessionID string
	UserID    string
}

// GetUser looks one account up by ID or, when ID is empty, by Username. The email is included
// only when CallerID is the account itself.
type GetUser struct {
	ID       string
	Username string
	CallerID string
}

// GetUsers looks several accounts up by id (at most domain.MaxUsersPerLookup); unknown ids are
// left out. Emails are never included.
type GetUsers struct {
	IDs []string
}

// UpdateProfile changes the caller's display name and/or bio; nil leaves a field as it is.
type UpdateProfile struct {
	CallerID    string
	DisplayName *string
	Bio         *string
}

func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return id.String(), nil
}

// signUp validates and normalises the request (every broken rule reported with its field),
// hashes the password, and creates the account, its first session and refresh token and the
// user.registered event in one transaction. A taken username or email is a conflict naming
// the field.
func (s *service) signUp(ctx context.Context, c SignUp) (Auth, error) {
	reg, err := domain.NewRegistration(c.Username, c.Email, c.Password)
	if err != nil {
		return Auth{}, err
	}
	hash, err := s.hasher.Hash(reg.Password)
	if err != nil {
		return Auth{}, fmt.Errorf("hash password: %w", err)
	}
	now := s.now()
	userID, err := newID()
	if err != nil {
		return Auth{}, err
	}
	u := domain.User{ID: userID, Username: reg.Username, Email: reg.Email, CreatedAt: now}
	sess, tok, auth, err := s.newSession(u, now)
	if err != nil {
		return Auth{}, err
	}
	ev, err := events.New(eventsv1.UserRegistered, u.ID, Producer,
		eventsv1.UserRegisteredPayload{UserID: u.ID, Username: u.Username})
	if err != nil {
		return Auth{}, err
	}
	if err := s.store.CreateUser(ctx, u, hash, sess, tok, ev); err != nil {
		return Auth{}, err
	}
	return auth, nil
}

// newSession makes a session of u starting at now, its first refresh token and access token.
// Issuing the access token before anything is stored means that a failing issuer leaves no
// half-made session behind.
func (s *service) newSession(u domain.User, now time.Time) (domain.Session, domain.RefreshToken, Auth, error) {
	sessionID, err := newID()
	if err != nil {
		return domain.Session{}, domain.RefreshToken{}, Auth{}, err
	}
	expires := now.Add(s.refreshTTL)
	sess := domain.Session{ID: sessionID, UserID: u.ID, CreatedAt: now, ExpiresAt: expires}
	plain, hash := domain.NewRefreshToken()
	tok := domain.RefreshToken{Hash: hash, SessionID: sessionID, CreatedAt: now, ExpiresAt: expires}
	access, accessExpires, err := s.tokens.Issue(u.ID, sessionID)
	if err != nil {
		return domain.Session{}, domain.RefreshToken{}, Auth{}, fmt.Errorf("issue access token: %w", err)
	}
	return sess, tok, Auth{
		User:                  u,
		SessionID:             sessionID,
		AccessToken:           access,
		AccessTokenExpiresAt:  accessExpires,
		RefreshToken:          plain,
		RefreshTokenExpiresAt: expires,
	}, nil
}

// login checks the credentials and starts a new session. An unknown account (including a
// login that cannot be a username or email at all) still costs one password verification,
// against a decoy hash, and fails with the same error as a wrong password.
func (s *service) login(ctx context.Context, c Login) (Auth, error) {
	u, hash, err := s.credentials(ctx, c.Login)
	if errors.Is(err, domain.ErrUserNotFound) {
		_, _ = s.hasher.Verify(c.Password, s.dummyHash)
		return Auth{}, domain.ErrInvalidCredentials
	}
	if err != nil {
		return Auth{}, err
	}
	ok, err := s.hasher.Verify(c.Password, hash)
	if err != nil {
		return Auth{}, fmt.Errorf("verify password of user %s: %w", u.ID, err)
	}
	if !ok {
		return Auth{}, domain.ErrInvalidCredentials
	}
	sess, tok, auth, err := s.newSession(u, s.now())
	if err != nil {
		return Auth{}, err
	}
	if err := s.store.CreateSession(ctx, sess, tok); err != nil {
		return Auth{}, err
	}
	return auth, nil
}

func (s *service) credentials(ctx context.Context, login string) (domain.User, string, error) {
	if strings.Contains(login, "@") {
		email, err := domain.ParseEmail(login)
		if err != nil {
			return domain.User{}, "", domain.ErrUserNotFound
		}
		return s.store.CredentialsByEmail(ctx, email)
	}
	username, err := domain.ParseUsername(login)
	if err != nil {
		return domain.User{}, "", domain.ErrUserNotFound
	}
	return s.store.CredentialsByUsername(ctx, username)
}

// refresh spends the presented refresh token and answers a new pair for the same session.
// Any failure is token_invalid; a reuse has revoked the session, which is logged.
func (s *service) refresh(ctx context.Context, c Refresh) (Auth, error) {
	oldHash, err := domain.HashRefreshToken(c.RefreshToken)
	if err != nil {
		return Auth{}, err
	}
	now := s.now()
	expires := now.Add(s.refreshTTL)
	plain, newHash := domain.NewRefreshToken()
	sess, err := s.store.RotateRefreshToken(ctx, oldHash, newHash, now, expires)
	if errors.Is(err, domain.ErrRefreshTokenReused) {
		s.log.WarnContext(ctx, "refresh token reused: session revoked",
			slog.String("session_id", sess.ID), slog.String("user_id", sess.UserID))
	}
	if err != nil {
		return Auth{}, err
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return Auth{}, fmt.Errorf("read user %s of session %s: %w", sess.UserID, sess.ID, err)
	}
	access, accessExpires, err := s.tokens.Issue(u.ID, sess.ID)
	if err != nil {
		return Auth{}, fmt.Errorf("issue access token: %w", err)
	}
	return Auth{
		User:                  u,
		SessionID:             sess.ID,
		AccessToken:           access,
		AccessTokenExpiresAt:  accessExpires,
		RefreshToken:          plain,
		RefreshTokenExpiresAt: expires,
	}, nil
}

// logout revokes the session of the refresh token. It always succeeds for a well-formed or
// malformed token alike, known or not, spent or not: logging out is idempotent and must not
// tell a caller which tokens exist.
func (s *service) logout(ctx context.Context, c Logout) (None, error) {
	hash, err := domain.HashRefreshToken(c.RefreshToken)
	if err != nil {
		return None{}, nil
	}
	return None{}, s.store.RevokeSessionByToken(ctx, hash, s.now())
}

// checkSession succeeds when the session exists, belongs to the user, and is neither revoked
// nor expired; otherwise it is token_invalid.
func (s *service) checkSession(ctx context.Context, c CheckSession) (None, error) {
	sess, err := s.store.Session(ctx, c.SessionID)
	if err != nil {
		return None{}, err
	}
	if sess.UserID != c.UserID {
		return None{}, domain.ErrSessionNotFound
	}
	return None{}, sess.Check(s.now())
}

func (s *service) signingKeys(context.Context, None) ([]byte, error) {
	return s.keys.JWKS(), nil
}

// getUser finds an account by id or username; a username that cannot exist is not_found.
func (s *service) getUser(ctx context.Context, q GetUser) (domain.User, error) {
	var (
		u   domain.User
		err error
	)
	if q.ID != "" {
		u, err = s.store.UserByID(ctx, q.ID)
	} else {
		u, err = s.userByUsername(ctx, q.Username)
	}
	if err != nil {
		return domain.User{}, err
	}
	if q.CallerID != u.ID {
		u.Email = ""
	}
	return u, nil
}

func (s *service) userByUsername(ctx context.Context, username string) (domain.User, error) {
	name, err := domain.ParseUsername(username)
	if err != nil {
		return domain.User{}, domain.ErrUserNotFound
	}
	return s.store.UserByUsername(ctx, name)
}

func (s *service) getUsers(ctx context.Context, q GetUsers) ([]domain.User, error) {
	if len(q.IDs) > domain.MaxUsersPerLookup {
		return nil, field("ids", domain.ErrTooManyIDs)
	}
	users, err := s.store.UsersByIDs(ctx, q.IDs)
	if err != nil {
		return nil, err
	}
	for i := range users {
		users[i].Email = ""
	}
	return users, nil
}

func (s *service) updateProfile(ctx context.Context, c UpdateProfile) (domain.User, error) {
	p, err := domain.NewProfileUpdate(c.DisplayName, c.Bio)
	if err != nil {
		return domain.User{}, err
	}
	u, err := s.store.UpdateProfile(ctx, c.CallerID, p, s.now())
	if errors.Is(err, domain.ErrUserNotFound) {
		return domain.User{}, domain.ErrCallerUnknown
	}
	return u, err
}
