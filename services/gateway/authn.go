package gateway

import (
	"context"
	"net/http"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/web"
)

type callerKey struct{}

// callerFrom returns the verified claims of the caller that [Service.authenticated]
// established.
func callerFrom(ctx context.Context) auth.Claims {
	c, _ := ctx.Value(callerKey{}).(auth.Claims)
	return c
}

// authenticated decorates a protected handler: the request must carry an access token that
// verifies locally and whose session user-service still holds open; the handler then finds the
// caller with callerFrom. A failure is a 401 problem with code token_missing, token_expired or
// token_invalid (a revoked session is token_invalid), whose WWW-Authenticate challenge the
// Responder adds (RFC 6750: error="invalid_token" when a token was presented).
func (s *Service) authenticated(h web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

// optionallyAuthenticated decorates a handler that anybody may call and that answers a known
// caller a little differently (liked_by_me): without an Authorization header the caller is
// anonymous (callerFrom returns zero claims); with one, the token must be valid as for
// [Service.authenticated] — a bad token is an error, not anonymity.
func (s *Service) optionallyAuthenticated(h web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if len(r.Header.Values("Authorization")) == 0 {
			return h(w, r)
		}
		return s.authenticated(h)(w, r)
	}
}

func (s *Service) authenticate(r *http.Request) (auth.Claims, error) {
	ctx := r.Context()
	token, err := bearerToken(r.Header.Values("Authorization"))
	if err != nil {
		return auth.Claims{}, err
	}
	c, err := s.tokens.Verify(ctx, token)
	if err != nil {
		return auth.Claims{}, verifierError(err)
	}
	if c.UserID == "" || c.SessionID == "" {
		return auth.Claims{}, errs.New(errs.TokenInvalid, "The access token does not name a user and a session.")
	}
	if err := s.checkSession(ctx, c.UserID, c.SessionID); err != nil {
		return auth.Claims{}, err
	}
	return c, nil
}

// checkSession asks user-service whether the session is still open. Local verification cannot
// know about logout or refresh-token reuse, which end the session before its access tokens
// expire: user-service can.
func (s *Service) checkSession(ctx context.Context, userID, sessionID string) error {
	if _, err := s.users.CheckSession(ctx, &userv1.CheckSessionRequest{SessionId: sessionID, UserId: userID}); err != nil {
		return sessionError(err)
	}
	return nil
}

// bearerToken extracts the token of the request's "Authorization: Bearer <token>" header with
// auth.BearerToken (no header: token_missing; anything else than one well-formed bearer
// credential: token_invalid). Several Authorization headers are token_invalid too: which one
// would be meant is anybody's guess.
func bearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return auth.BearerToken("")
	case 1:
		return auth.BearerToken(values[0])
	default:
		return "", errs.New(errs.TokenInvalid, "Send exactly one Authorization header.")
	}
}

// verifierError keeps the verifier's token codes and the codes that say the verification
// itself could not run; anything else means the token is not acceptable. A client's token must
// never turn into a 5xx.
func verifierError(err error) error {
	e := errs.From(err)
	switch e.Code {
	case errs.TokenMissing, errs.TokenExpired, errs.TokenInvalid,
		errs.Unavailable, errs.DeadlineExceeded, errs.Canceled:
		return e
	}
	return errs.Wrap(err, errs.TokenInvalid, "The access token is invalid.")
}

// sessionError maps CheckSession's answer: user-service saying the session is over, unknown or
// malformed makes the token invalid (the session id came from the client's token); its outages
// keep their own code.
func sessionError(err error) error {
	e := errs.From(err)
	switch e.Code {
	case errs.TokenInvalid, errs.TokenExpired, errs.Unauthenticated, errs.NotFound, errs.Forbidden, errs.ValidationFailed:
		return errs.Wrap(err, errs.TokenInvalid, "The session of this access token has ended.")
	}
	return e
}
