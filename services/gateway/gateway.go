// Package gateway is gateway-service: the public HTTP API of Piazza. It authenticates callers,
// validates requests at the edge, calls the owning services over gRPC, and holds the clients'
// Server-Sent Events streams. Every error it returns is an RFC 9457 problem document carrying
// the request's trace id.
//
// The identity API (sign-up, login, token refresh and logout, profiles, the follow graph, and
// the token-verification keys at /.well-known/jwks.json) is served from user-service: the
// gateway decodes and validates each request strictly, rate-limits sign-up and login, verifies
// access tokens locally and checks their session with user-service, and answers with its own
// response shapes as described by api/openapi.json. Posts, comments, likes and the timelines
// come from post-service (their authors from user-service, one GetUsers call per page), the
// inbox from notification-service, presence and connection history from presence-service,
// and direct messages — conversations and their messages — from messaging-service (their
// participants and senders from user-service, one GetUsers call per page too).
//
// GET /v1/events is the real-time stream (see package stream): authenticated by a bearer token
// or a one-time ticket from POST /v1/events/ticket, it carries the caller's notifications in
// order, replaying what a reconnecting client missed. Run runs the instance's stream hub next
// to the HTTP server.
package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api"
	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/push"
	"github.com/piazza-social/piazza/platform/web"
	"github.com/piazza-social/piazza/services/gateway/stream"
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
	// Now is the clock (token lifetimes, the key-set cache, the streams' token expiry,
	// lifetimes and heartbeats); default time.Now.
	Now func() time.Time

	// Posts is post-service; without it the post, comment and timeline routes answer 503.
	Posts postv1.PostServiceClient
	// Notifications is notification-service: the inbox routes, and the streams' replay.
	Notifications notificationv1.NotificationServiceClient
	// Presence is presence-service: GET /v1/users/{username}/presence and /v1/me/sessions.
	Presence presencev1.PresenceServiceClient
	// Messaging is messaging-service; without it the conversation and message routes answer
	// 503.
	Messaging messagingv1.MessagingServiceClient

	// The event streams (GET /v1/events) need Notifications, PresenceStore, Push, Events,
	// InstanceID and Tickets; without any of them the stream and ticket routes answer 503.

	// PresenceStore keeps the presence and routing entry of every stream (TTL-renewed).
	PresenceStore presence.Store
	// Push delivers the notification batches addressed to this instance.
	Push push.Subscriber
	// InstanceID names this gateway instance (its push channel, its presence entries). It must
	// be unique among the running instances, e.g. a random id drawn at start-up.
	InstanceID string
	// Events publishes presence.connected and presence.disconnected (an *events.Publisher).
	Events EventPublisher
	// Tickets keeps the one-time stream tickets; share one (Redis) across instances, since a
	// ticket is redeemed by whichever instance the stream reaches.
	Tickets TicketStore
	// TicketTTL is how long a ticket may be redeemed; default 30 seconds.
	TicketTTL time.Duration
	// SSE tunes the streams; zero fields take the defaults of stream.Tuning.
	SSE stream.Tuning

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
	if c.TicketTTL <= 0 {
		c.TicketTTL = 30 * time.Second
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
}

// MaxIdentityBody caps the bodies of the identity routes: the largest valid one is well under
// 2 KiB, and there is no reason to read more before rejecting it.
const MaxIdentityBody = 16 << 10

// MaxContentBody caps the bodies of the post, comment and read-marker routes: 500 characters
// of text take at most 6 KB of JSON even when every one is escaped. A new conversation's 50
// usernames of at most 30 characters fit as well.
const MaxContentBody = 16 << 10

// MaxMessageBody caps the body of a sent message: 4000 characters take at most 48 KB of JSON
// even when every one is escaped (a character outside the BMP as two \uXXXX escapes).
const MaxMessageBody = 64 << 10

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
	hub     *stream.Hub // nil when the streams lack a dependency
	ready   chan struct{}
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
		ready:   make(chan struct{}),
	}
	if cfg.Users != nil {
		s.keys = &keySetCache{users: cfg.Users, ttl: cfg.JWKSCacheTTL, now: cfg.Now, log: log}
	}
	s.hub = s.newHub()
	s.handle("GET /v1/openapi.json", http.HandlerFunc(s.openAPI))
	s.identityRoutes()
	s.contentRoutes()
	s.realtimeRoutes()
	s.messagingRoutes()
	s.server = web.NewServer(web.ServerConfig{Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout}, s.router, log)
	return s
}

// route is one route of a group.
type route struct {
	pattern string
	h       web.HandlerFunc
	body    int64 // the largest body it reads; 0: it reads none
	stream  bool  // long-lived: exempt from the request timeout
}

// dep is one dependency of a group of routes, and whether the gateway has it.
type dep struct {
	name    string
	present bool
}

// group registers routes that need deps. When one is missing, every route of the group
// answers 503 unavailable (and New logs which), so that a process wired without them still
// serves the rest.
func (s *Service) group(name string, deps []dep, routes []route) {
	var missing []string
	for _, d := range deps {
		if !d.present {
			missing = append(missing, d.name)
		}
	}
	if len(missing) > 0 {
		s.log.LogAttrs(context.Background(), slog.LevelError, name+" routes answer 503: the gateway was built without some of their dependencies",
			slog.Any("missing", missing))
	}
	for _, rt := range routes {
		h := rt.h
		if len(missing) > 0 {
			h = notConfigured
		}
		var handler http.Handler = s.rs.Handler(h)
		if rt.body > 0 {
			handler = web.BodyLimit(rt.body)(handler)
		}
		if rt.stream {
			s.handleStream(rt.pattern, handler)
		} else {
			s.handle(rt.pattern, handler)
		}
	}
}

// identityRoutes registers the identity API. Protected routes go through
// [Service.authenticated]; the others need no token.
func (s *Service) identityRoutes() {
	s.group("identity", []dep{{"users", s.users != nil}, {"tokens", s.tokens != nil}, {"limiter", s.limiter != nil}}, []route{
		{pattern: "GET /.well-known/jwks.json", h: s.jwks},
		{pattern: "POST /v1/auth/signup", h: s.signup, body: MaxIdentityBody},
		{pattern: "POST /v1/auth/login", h: s.login, body: MaxIdentityBody},
		{pattern: "POST /v1/auth/refresh", h: s.refresh, body: MaxIdentityBody},
		{pattern: "POST /v1/auth/logout", h: s.logout, body: MaxIdentityBody},
		{pattern: "GET /v1/me", h: s.authenticated(s.getMe)},
		{pattern: "PATCH /v1/me", h: s.authenticated(s.updateMe), body: MaxIdentityBody},
		{pattern: "GET /v1/users/{username}", h: s.getUser},
		{pattern: "POST /v1/users/{username}/follow", h: s.authenticated(s.follow)},
		{pattern: "DELETE /v1/users/{username}/follow", h: s.authenticated(s.unfollow)},
		{pattern: "GET /v1/users/{username}/followers", h: s.listFollowers},
		{pattern: "GET /v1/users/{username}/following", h: s.listFollowing},
	})
}

// contentRoutes registers posts, comments, likes and timelines. The reads check the caller's
// session alongside their own calls ([Service.authenticatedRead]), the writes before them.
func (s *Service) contentRoutes() {
	s.group("post", []dep{{"users", s.users != nil}, {"tokens", s.tokens != nil}, {"posts", s.cfg.Posts != nil}}, []route{
		{pattern: "POST /v1/posts", h: s.authenticated(s.createPost), body: MaxContentBody},
		{pattern: "GET /v1/posts/{id}", h: s.optionallyAuthenticatedRead(s.getPost)},
		{pattern: "DELETE /v1/posts/{id}", h: s.authenticated(s.deletePost)},
		{pattern: "POST /v1/posts/{id}/like", h: s.authenticated(s.likePost)},
		{pattern: "DELETE /v1/posts/{id}/like", h: s.authenticated(s.unlikePost)},
		{pattern: "POST /v1/posts/{id}/comments", h: s.authenticated(s.addComment), body: MaxContentBody},
		{pattern: "GET /v1/posts/{id}/comments", h: s.listComments},
		{pattern: "GET /v1/timeline", h: s.authenticatedRead(s.homeTimeline)},
		{pattern: "GET /v1/users/{username}/posts", h: s.optionallyAuthenticatedRead(s.listUserPosts)},
	})
}

// realtimeRoutes registers the inbox, presence and the event streams.
func (s *Service) realtimeRoutes() {
	authn := []dep{{"users", s.users != nil}, {"tokens", s.tokens != nil}}
	s.group("notification", append(authn, dep{"notifications", s.cfg.Notifications != nil}), []route{
		{pattern: "GET /v1/notifications", h: s.authenticated(s.listNotifications)},
		{pattern: "GET /v1/notifications/unread_count", h: s.authenticated(s.unreadCount)},
		{pattern: "POST /v1/notifications/read", h: s.authenticated(s.markRead), body: MaxContentBody},
	})
	s.group("presence", append(authn, dep{"presence", s.cfg.Presence != nil}), []route{
		{pattern: "GET /v1/users/{username}/presence", h: s.authenticated(s.getPresence)},
		{pattern: "GET /v1/me/sessions", h: s.authenticated(s.listSessions)},
	})
	s.group("event stream", append(authn, dep{"tickets", s.cfg.Tickets != nil}, dep{"stream hub", s.hub != nil}), []route{
		{pattern: "POST /v1/events/ticket", h: s.authenticated(s.issueTicket)},
		{pattern: "GET /v1/events", h: s.events, stream: true},
	})
}

// messagingRoutes registers conversations and their messages.
func (s *Service) messagingRoutes() {
	s.group("messaging", []dep{{"users", s.users != nil}, {"tokens", s.tokens != nil}, {"messaging", s.cfg.Messaging != nil}}, []route{
		{pattern: "POST /v1/conversations", h: s.authenticated(s.createConversation), body: MaxContentBody},
		{pattern: "GET /v1/conversations", h: s.authenticated(s.listConversations)},
		{pattern: "POST /v1/conversations/{id}/messages", h: s.authenticated(s.sendMessage), body: MaxMessageBody},
		{pattern: "GET /v1/conversations/{id}/messages", h: s.authenticated(s.listMessages)},
		{pattern: "POST /v1/conversations/{id}/read", h: s.authenticated(s.markConversationRead), body: MaxContentBody},
	})
}

// newHub builds the stream hub, or returns nil (logged by realtimeRoutes' group) when one of
// its dependencies is missing.
func (s *Service) newHub() *stream.Hub {
	cfg := s.cfg
	if cfg.Notifications == nil || cfg.PresenceStore == nil || cfg.Push == nil || cfg.Events == nil || cfg.InstanceID == "" {
		s.log.LogAttrs(context.Background(), slog.LevelError, "no event streams: the gateway was built without some of their dependencies",
			slog.Bool("notifications", cfg.Notifications != nil), slog.Bool("presence_store", cfg.PresenceStore != nil),
			slog.Bool("push", cfg.Push != nil), slog.Bool("events", cfg.Events != nil), slog.Bool("instance_id", cfg.InstanceID != ""))
		return nil
	}
	hub, err := stream.NewHub(stream.Config{
		InstanceID:     cfg.InstanceID,
		Push:           cfg.Push,
		Inbox:          cfg.Notifications,
		Presence:       cfg.PresenceStore,
		Events:         cfg.Events,
		Tuning:         cfg.SSE,
		Now:            cfg.Now,
		TracerProvider: cfg.TracerProvider,
		MeterProvider:  cfg.MeterProvider,
		Propagator:     cfg.Propagator,
	}, s.log)
	if err != nil {
		s.log.LogAttrs(context.Background(), slog.LevelError, "no event streams", slog.String("error", err.Error()))
		return nil
	}
	return hub
}

func notConfigured(http.ResponseWriter, *http.Request) error {
	return errs.New(errs.Unavailable, "This gateway cannot serve this route.")
}

// handle registers a route and remembers its pattern, so tests can hold the server to its
// OpenAPI document.
func (s *Service) handle(pattern string, h http.Handler) {
	s.router.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// handleStream registers a long-lived route (exempt from the request timeout).
func (s *Service) handleStream(pattern string, h http.Handler) {
	s.router.HandleStream(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Handler is the public API, middleware included; tests serve it with httptest.
func (s *Service) Handler() http.Handler { return s.router }

// Routes lists the registered patterns ("METHOD /path").
func (s *Service) Routes() []string { return s.routes }

// Run serves the public API and runs the instance's stream hub until ctx is cancelled; it
// then closes every event stream (they would hold the drain up) and drains in-flight
// requests. It returns early with an error if the listener or the hub's push subscription
// fails.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.server.Run(ctx) })
	ready := []<-chan struct{}{s.server.Ready()}
	if s.hub != nil {
		ready = append(ready, s.hub.Ready())
		// The streams end when the server starts draining, whatever started it.
		hubCtx, cancel := context.WithCancel(ctx)
		g.Go(func() error {
			defer cancel()
			go func() {
				select {
				case <-s.server.Draining():
					cancel()
				case <-hubCtx.Done():
				}
			}()
			return s.hub.Run(hubCtx)
		})
	}
	go func() {
		for _, c := range ready {
			select {
			case <-c:
			case <-ctx.Done():
				return
			}
		}
		close(s.ready)
	}()
	return g.Wait()
}

// Ready is closed once the public listener is bound and, when the gateway holds event
// streams, the stream hub has subscribed to this instance's push channel.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address of the public listener, or nil before it listens.
func (s *Service) Addr() net.Addr { return s.server.Addr() }

func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(api.OpenAPI)
}
