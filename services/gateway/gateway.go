// Package gateway is gateway-service: the public HTTP API of Piazza. It authenticates callers,
// validates requests at the edge, calls the owning services over gRPC, and (in later work)
// holds browsers' Server-Sent Events streams. Every error it returns is an RFC 9457 problem
// document carrying the request's trace id.
//
// The identity API (sign-up, login, token refresh and logout, profiles, the follow graph, and
// the token-verification keys at /.well-known/jwks.json) is served from user-service: the
// gateway decodes and validates each request strictly, rate-limits sign-up and login, verifies
// access tokens locally and checks their session with user-service, and answers with its own
// response shapes as described by api/openapi.json.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/web"
)

// Config configures the gateway. Zero fields take the defaults.
type Config struct {
	// Addr is the public listen address, e.g. 127.0.0.1:8080.
	Addr string
	// RequestTimeout bounds one non-streaming request.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies. The identity routes also cap their bodies at
	// [MaxIdentityBody], whichever is smaller.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the drain on shutdown.
	ShutdownTimeout time.Duration

	// Users is user-service. Users, Tokens and Limiter are required by the identity routes:
	// when one is nil those routes answer 503 unavailable (and New logs an error), so that a
	// process wired without them still serves the rest.
	Users userv1.UserServiceClient
	// Tokens verifies access tokens locally.
	Tokens TokenVerifier
	// Limiter counts sign-up and login attempts; share one across gateway instances (Redis) for
	// the limits to hold across them.
	Limiter RateLimiter
	// RateLimits are the sign-up and login limits; zero fields take [DefaultRateLimits]
	// (check a configured value with [RateLimits.Validate]).
	RateLimits RateLimits
	// TrustedProxies are the networks of the reverse proxies in front of the gateway. Only a
	// request arriving from one of them has its X-Forwarded-For header believed (the client is
	// the right-most address that is not a trusted proxy); by default none is, and the client
	// is the connection's peer address.
	TrustedProxies []netip.Prefix
	// JWKSMaxAge is the Cache-Control max-age of /.well-known/jwks.json; default 5 minutes.
	// user-service must publish a new signing key at least JWKSMaxAge + JWKSCacheTTL before it
	// signs with it, so that every verifier has it in time.
	JWKSMaxAge time.Duration
	// JWKSCacheTTL is how long the gateway reuses the key set it got from user-service;
	// default 30 seconds.
	JWKSCacheTTL time.Duration
	// Now is the clock (token lifetimes, the key-set cache); default time.Now.
	Now func() time.Time

	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

func (c *Config) setDefaults(log *slog.Logger) {
	c.RateLimits = c.RateLimits.withDefaults(log)
	if c.JWKSMaxAge <= 0 {
		c.JWKSMaxAge = 5 * time.Minute
	}
	if c.JWKSCacheTTL <= 0 {
		c.JWKSCacheTTL = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
}

// MaxIdentityBody caps the bodies of the identity routes: the largest valid one is well under
// 2 KiB, and there is no reason to read more before rejecting it.
const MaxIdentityBody = 16 << 10

// Service is a running gateway instance.
type Service struct {
	router *web.Router
	server *web.Server
	rs     *web.Responder
	log    *slog.Logger
	routes []string

	cfg     Config
	users   userv1.UserServiceClient
	tokens  TokenVerifier
	limiter RateLimiter
	keys    *keySetCache
	metrics metrics
}

// New builds the gateway and its routes; it listens only when Run is called.
func New(cfg Config, log *slog.Logger) *Service {
	log = log.With(slog.String("service", "gateway"))
	cfg.setDefaults(log)
	s := &Service{
		rs:  web.NewResponder(log),
		log: log,
		router: web.NewRouter(web.RouterConfig{Middleware: web.Stack(web.StackConfig{
			TracerProvider: cfg.TracerProvider,
			MeterProvider:  cfg.MeterProvider,
			Propagator:     cfg.Propagator,
			Timeout:        cfg.RequestTimeout,
			BodyLimit:      cfg.MaxBodyBytes,
		}, log)}, log),
		cfg:     cfg,
		users:   cfg.Users,
		tokens:  cfg.Tokens,
		limiter: cfg.Limiter,
		metrics: newMetrics(cfg.MeterProvider, log),
	}
	if cfg.Users != nil {
		s.keys = &keySetCache{users: cfg.Users, ttl: cfg.JWKSCacheTTL, now: cfg.Now, log: log}
	}
	s.handle("GET /v1/openapi.json", http.HandlerFunc(s.openAPI))
	s.identityRoutes()
	s.server = web.NewServer(web.ServerConfig{Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout}, s.router, log)
	return s
}

// identityRoutes registers the identity API. Protected routes go through
// [Service.authenticated]; the others need no token.
func (s *Service) identityRoutes() {
	routes := []struct {
		pattern string
		h       web.HandlerFunc
		body    bool // the route reads a JSON body
	}{
		{"GET /.well-known/jwks.json", s.jwks, false},
		{"POST /v1/auth/signup", s.signup, true},
		{"POST /v1/auth/login", s.login, true},
		{"POST /v1/auth/refresh", s.refresh, true},
		{"POST /v1/auth/logout", s.logout, true},
		{"GET /v1/me", s.authenticated(s.getMe), false},
		{"PATCH /v1/me", s.authenticated(s.updateMe), true},
		{"GET /v1/users/{username}", s.getUser, false},
		{"POST /v1/users/{username}/follow", s.authenticated(s.follow), false},
		{"DELETE /v1/users/{username}/follow", s.authenticated(s.unfollow), false},
		{"GET /v1/users/{username}/followers", s.listFollowers, false},
		{"GET /v1/users/{username}/following", s.listFollowing, false},
	}
	missing := s.users == nil || s.tokens == nil || s.limiter == nil
	if missing {
		s.log.LogAttrs(context.Background(), slog.LevelError,
			"identity routes answer 503: the gateway was built without user-service, a token verifier or a rate limiter",
			slog.Bool("users", s.users != nil), slog.Bool("tokens", s.tokens != nil), slog.Bool("limiter", s.limiter != nil))
	}
	for _, rt := range routes {
		h := rt.h
		if missing {
			h = notConfigured
		}
		var handler http.Handler = s.rs.Handler(h)
		if rt.body {
			handler = web.BodyLimit(MaxIdentityBody)(handler)
		}
		s.handle(rt.pattern, handler)
	}
}

func notConfigured(http.ResponseWriter, *http.Request) error {
	return errs.New(errs.Unavailable, "This gateway cannot serve the identity API.")
}

// handle registers a route and remembers its pattern, so tests can hold the server to its
// OpenAPI document.
func (s *Service) handle(pattern string, h http.Handler) {
	s.router.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Handler is the public API, middleware included; tests serve it with httptest.
func (s *Service) Handler() http.Handler { return s.router }

// Routes lists the registered patterns ("METHOD /path").
func (s *Service) Routes() []string { return s.routes }

// Run serves the public API until ctx is cancelled, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error { return s.server.Run(ctx) }

// Ready is closed once the public listener is bound.
func (s *Service) Ready() <-chan struct{} { return s.server.Ready() }

func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(api.OpenAPI)
}
