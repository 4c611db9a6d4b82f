package gateway

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"sync/atomic"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/web"
)

type callerKey struct{}

// callerFrom returns the verified claims of the caller that [Service.authenticated] or
// [Service.authenticatedRead] established.
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

// authenticatedRead is [Service.authenticated] for a handler that only reads: the token is
// verified first, as there, but the session is checked by the first user-service lookup the
// handler makes (GetUser or GetUsers carry it; see carrySessionCheck), which every read of
// posts makes anyway, so the check costs no round trip of its own. The handler writes into a
// held response, which reaches the client only once the session is known to be open: a lookup
// that carried the check succeeded, or, when the handler made none or failed before, a
// CheckSession call after it. A session that has ended gets the same 401 (an outage of
// user-service the same error) as from authenticated, and reads nothing.
func (s *Service) authenticatedRead(h web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.verifyToken(r)
		if err != nil {
			return err
		}
		chk := &sessionCheck{req: &userv1.CheckSessionRequest{SessionId: c.SessionID, UserId: c.UserID}}
		ctx := context.WithValue(context.WithValue(r.Context(), callerKey{}, c), sessionCheckKey{}, chk)
		held := newHeldResponse()
		herr := h(held, r.WithContext(ctx))
		if !chk.carried() {
			if err := s.checkSession(r.Context(), c.UserID, c.SessionID); err != nil {
				return err
			}
		} else if herr != nil && sessionEnded(herr) {
			return sessionError(herr)
		}
		if herr != nil {
			return herr
		}
		held.writeTo(w)
		return nil
	}
}

// sessionCheck is the session check a read owes before its answer may leave.
type sessionCheck struct {
	req  *userv1.CheckSessionRequest
	sent atomic.Bool
}

type sessionCheckKey struct{}

// carrySessionCheck returns the session check for a user-service lookup to carry
// (check_session): the read's owed check the first time it is asked in a request made through
// [Service.authenticatedRead], nil otherwise. A lookup that carried it and succeeded proves the
// session open; one that failed with token_invalid or token_expired says it has ended
// (user-service checks the session before it looks anything up).
func carrySessionCheck(ctx context.Context) *userv1.CheckSessionRequest {
	chk, ok := ctx.Value(sessionCheckKey{}).(*sessionCheck)
	if !ok || chk.sent.Swap(true) {
		return nil
	}
	return chk.req
}

// carried reports whether a lookup carried the check.
func (c *sessionCheck) carried() bool { return c.sent.Load() }

// sessionEnded reports whether err, from a lookup that carried the session check, is the
// check's failure rather than the lookup's.
func sessionEnded(err error) bool {
	switch errs.CodeOf(err) {
	case errs.TokenInvalid, errs.TokenExpired:
		return true
	}
	return false
}

// optionallyAuthenticatedRead decorates a read that anybody may make and that answers a known
// caller a little differently (liked_by_me): without an Authorization header the caller is
// anonymous (callerFrom returns zero claims); with one, the token must be valid as for
// [Service.authenticatedRead] — a bad token is an error, not anonymity.
func (s *Service) optionallyAuthenticatedRead(h web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if len(r.Header.Values("Authorization")) == 0 {
			return h(w, r)
		}
		return s.authenticatedRead(h)(w, r)
	}
}

// heldResponse is an http.ResponseWriter that keeps the response in memory until writeTo.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newHeldResponse() *heldResponse { return &heldResponse{header: http.Header{}} }

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return h.body.Write(b)
}

// writeTo writes the held response to w: its headers, its status (200 if none was written)
// and its body.
func (h *heldResponse) writeTo(w http.ResponseWriter) {
	maps.Copy(w.Header(), h.header)
	h.WriteHeader(http.StatusOK)
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes()) // a failed write means the client left; nothing to do
}

func (s *Service) authenticate(r *http.Request) (auth.Claims, error) {
	c, err := s.verifyToken(r)
	if err != nil {
		return auth.Claims{}, err
	}
	if err := s.checkSession(r.Context(), c.UserID, c.SessionID); err != nil {
		return auth.Claims{}, err
	}
	return c, nil
}

// verifyToken verifies the request's bearer token locally: signature, claims and time, and
// that it names a user and a session. Whether the session is still open is checkSession's
// question.
func (s *Service) verifyToken(r *http.Request) (auth.Claims, error) {
	token, err := bearerToken(r.Header.Values("Authorization"))
	if err != nil {
		return auth.Claims{}, err
	}
	c, err := s.tokens.Verify(r.Context(), token)
	if err != nil {
		return auth.Claims{}, verifierError(err)
	}
	if c.UserID == "" || c.SessionID == "" {
		return auth.Claims{}, errs.New(errs.TokenInvalid, "The access token does not name a user and a session.")
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
