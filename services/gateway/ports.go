package gateway

import (
	"context"
	"time"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/services/gateway/tickets"
)

// The gateway's outbound ports besides the services it calls over gRPC (their generated
// clients) and the platform's presence and push ports. They are declared here, by their
// consumer, with the method sets of their implementations, so that *auth.Verifier, every
// ratelimit.Limiter, every tickets.Store and *events.Publisher plug in as they are and tests
// can pass fakes.

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

// TicketStore keeps the one-time tickets that open an event stream (GET /v1/events?ticket=)
// where a bearer token cannot be sent (a browser's EventSource). tickets.Memory serves one
// instance; tickets.Redis lets any instance redeem a ticket another issued.
//
// Put stores a ticket under a fresh id for ttl; Take redeems it at most once, returning
// tickets.ErrNotFound for an unknown, expired or redeemed id.
type TicketStore interface {
	Put(ctx context.Context, id string, t tickets.Ticket, ttl time.Duration) error
	Take(ctx context.Context, id string) (tickets.Ticket, error)
}

// EventPublisher publishes domain events on the bus (the gateway publishes presence.connected
// and presence.disconnected); *events.Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, topic string, envs ...events.Envelope) error
}
