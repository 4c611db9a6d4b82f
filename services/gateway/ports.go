package gateway

import (
	"context"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/ratelimit"
)

// The gateway's outbound ports besides user-service (a userv1.UserServiceClient). They are
// declared here, by their consumer, with the method sets of the platform implementations, so
// that *auth.Verifier and every ratelimit.Limiter plug in as they are and tests can pass fakes.

// TokenVerifier verifies an access token locally (signature, algorithm, expiry, audience,
// issuer) and returns its claims; *auth.Verifier is one. It does not know whether the session
// is still open: the gateway asks user-service for that.
//
// Errors are *errs.Error with code token_missing, token_expired or token_invalid; unavailable,
// deadline_exceeded and canceled say the verification could not run (the key set could not be
// fetched) and are passed on as such. Any other error is taken as token_invalid: a client's
// token never produces a 5xx.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

// RateLimiter counts one request against key under a limit and says whether it may proceed;
// every ratelimit.Limiter is one. A limiter shared by the gateway instances (Redis) makes the
// limits hold across them.
type RateLimiter interface {
	Allow(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Result, error)
}
