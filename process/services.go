package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	messagingv1 "github.com/piazza-social/piazza/gen/piazza/messaging/v1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/admin"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/platform/lifecycle"
	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/platform/telemetry"
	"github.com/piazza-social/piazza/services/deadletter"
	"github.com/piazza-social/piazza/services/gateway"
	"github.com/piazza-social/piazza/services/gateway/stream"
	"github.com/piazza-social/piazza/services/gateway/tickets"
	"github.com/piazza-social/piazza/services/messaging"
	"github.com/piazza-social/piazza/services/notification"
	notificationadapters "github.com/piazza-social/piazza/services/notification/adapters"
	"github.com/piazza-social/piazza/services/post"
	postadapters "github.com/piazza-social/piazza/services/post/adapters"
	presencesvc "github.com/piazza-social/piazza/services/presence"
	"github.com/piazza-social/piazza/services/user"
	"github.com/piazza-social/piazza/services/user/adapters"
)

// assembly holds what the services of one process share while they are being built.
type assembly struct {
	cfg   Config
	infra *infrastructure
	adm   *admin.Server
	tel   *telemetry.Telemetry
	log   *slog.Logger
	g     *lifecycle.Group

	// grpcServer serves the gRPC services of this process: on an in-memory listener in the
	// embedded default (the services still talk gRPC to each other, exactly as when
	// distributed), on --grpc-addr in distributed mode.
	grpcServer *rpc.Server
	local      *bufconn.Listener

	keys  *auth.KeySet                // user-service's signing keys, when it runs here
	conns map[string]*grpc.ClientConn // one client connection per service called

	// router runs the event handlers of every service of this process.
	router *events.Router
}

// eventRouter returns the process's event router, creating it on first use.
func (a *assembly) eventRouter() (*events.Router, error) {
	if a.router != nil {
		return a.router, nil
	}
	decorate, err := handlerDecorator(a.cfg.Failpoint, a.log)
	if err != nil {
		return nil, settingError("failpoint", "%v", err)
	}
	r, err := events.NewRouter(events.RouterConfig{
		DeadLetters:    a.infra.bus,
		Retry:          events.RetryPolicy{MaxAttempts: a.cfg.EventMaxAttempts},
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
		Propagator:     a.tel.Propagator(),
		Decorate:       decorate,
	}, a.log)
	if err != nil {
		return nil, err
	}
	a.router = r
	a.g.Add("events", r.Run)
	return r, nil
}

// addServices builds the services cfg selects and adds each long-running part to g.
func addServices(ctx context.Context, g *lifecycle.Group, cfg Config, in *infrastructure, adm *admin.Server, tel *telemetry.Telemetry, log *slog.Logger) error {
	a := &assembly{cfg: cfg, infra: in, adm: adm, tel: tel, log: log, g: g}
	a.grpcServer = rpc.NewServer(rpc.ServerConfig{
		Addr:            cfg.GRPCAddr,
		TracerProvider:  tel.TracerProvider(),
		MeterProvider:   tel.MeterProvider(),
		Propagator:      tel.Propagator(),
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, log)
	if cfg.Mode == Embedded {
		a.local = bufconn.Listen(1 << 20)
	}
	servesGRPC := false
	for _, svc := range []struct {
		name string
		add  func(context.Context) error
	}{
		{"user", a.addUser},
		{"post", a.addPost},
		{"notification", a.addNotification},
		{"presence", a.addPresence},
		{"messaging", a.addMessaging},
		// scaffold:services (scripts/add-service.sh adds new services above this line)
	} {
		if cfg.Runs(svc.name) {
			if err := svc.add(ctx); err != nil {
				return err
			}
			servesGRPC = true
		}
	}
	if cfg.Runs("deadletter") {
		if err := a.addDeadLetter(ctx); err != nil {
			return err
		}
	}
	if servesGRPC {
		a.adm.AddCheck("grpc-listener", closedCheck(a.grpcServer.Ready(), "the gRPC listener is not bound yet"))
		if cfg.Mode == Embedded {
			g.Add("grpc", func(ctx context.Context) error { return a.grpcServer.Serve(ctx, a.local) })
		} else {
			g.Add("grpc", a.grpcServer.Run)
		}
	}
	if cfg.Runs("gateway") {
		if err := a.addGateway(); err != nil {
			return err
		}
	}
	return nil
}

// openDatabase opens the relational store of one service: a SQLite file in the data directory
// in the embedded default, which migrates itself (it is one process), or the given PostgreSQL
// URL when distributed, which never does: the migration job (`piazza migrate postgres`) runs
// before the services, and until it has, the service reports not ready, saying which version
// it needs.
func (a *assembly) openDatabase(ctx context.Context, service, url, setting string) (*database.DB, error) {
	if a.cfg.Mode == Embedded {
		url = "sqlite:" + filepath.Join(a.cfg.DataDir, service+".db")
		setting = "data-dir"
	}
	db, err := database.Open(ctx, database.Config{URL: url, TracerProvider: a.tel.TracerProvider()}, a.log)
	if err != nil {
		return nil, settingError(setting, "%v", err)
	}
	a.infra.closer = append(a.infra.closer, db.Close)
	if err := db.Ping(ctx); err != nil {
		return nil, settingError(setting, "%v", err)
	}
	sets, ok := RelationalMigrations[service]
	if !ok {
		sets = embeddedOnlyMigrations[service]
	}
	if a.cfg.Mode == Embedded {
		for _, set := range sets {
			if _, err := database.Migrate(ctx, db, set); err != nil {
				return nil, fmt.Errorf("%s: %w", service, err)
			}
		}
		a.adm.AddCheck(service+"-database", db.Ping)
		return db, nil
	}
	a.adm.AddCheck(service+"-database", func(ctx context.Context) error {
		if err := db.Ping(ctx); err != nil {
			return err
		}
		return schemaUpToDate(ctx, db, sets)
	})
	// Nothing of the service may run on a schema it does not know: wait for the job.
	if err := waitFor(ctx, a.log, service+" database schema", func(ctx context.Context) error { return schemaUpToDate(ctx, db, sets) }); err != nil {
		return nil, err
	}
	return db, nil
}

// waitFor polls check until it passes or ctx ends, logging what it waits for at the first
// failure and every 10 seconds after.
func waitFor(ctx context.Context, log *slog.Logger, what string, check func(context.Context) error) error {
	var lastLog time.Time
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			log.WarnContext(ctx, "waiting", "for", what, "reason", err.Error())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (while waiting: %v)", what, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// schemaUpToDate fails, naming the version needed, unless every set is fully applied.
func schemaUpToDate(ctx context.Context, db *database.DB, sets []database.MigrationSet) error {
	for _, set := range sets {
		st, err := database.Status(ctx, db, set)
		if err != nil {
			return err
		}
		if !st.UpToDate() {
			return fmt.Errorf("schema %q is at version %d, this build needs %d: run `piazza migrate postgres`", set.Name, st.Current, st.Latest)
		}
	}
	return nil
}

func (a *assembly) addUser(ctx context.Context) error {
	cfg := a.cfg
	db, err := a.openDatabase(ctx, "user", cfg.UserDatabaseURL, "user-database-url")
	if err != nil {
		return err
	}
	ob, err := outbox.New(outbox.Config{DB: db, Propagator: a.tel.Propagator()})
	if err != nil {
		return err
	}
	fwd, err := outbox.NewForwarder(outbox.ForwarderConfig{Outbox: ob, Publisher: a.infra.bus, MeterProvider: a.tel.MeterProvider(), TracerProvider: a.tel.TracerProvider()}, a.log.With("service", "user"))
	if err != nil {
		return err
	}
	// The embedded default creates its first key; a distributed deployment must provide keys
	// shared by every user-service replica.
	keys, err := auth.LoadKeyDir(cfg.JWTKeysDir, cfg.Mode == Embedded)
	if err != nil {
		return settingError("jwt-keys-dir", "%v", err)
	}
	issuer, err := auth.NewIssuer(auth.IssuerConfig{Keys: keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTokenTTL})
	if err != nil {
		return err
	}
	svc, err := user.New(user.Config{
		PasswordHashing: adapters.Argon2idParams{
			MemoryKiB:   uint32(cfg.Argon2MemoryKiB),
			Iterations:  uint32(cfg.Argon2Iterations),
			Parallelism: uint8(cfg.Argon2Parallelism),
		},
		RefreshTTL: cfg.RefreshTokenTTL,
	}, user.Deps{DB: db, Outbox: ob, Tokens: issuer, Keys: keys}, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	a.keys = keys
	a.g.Add("user", svc.Run)
	a.g.Add("user-outbox", fwd.Run)
	return nil
}

func (a *assembly) addNotification(ctx context.Context) error {
	db, err := a.openDatabase(ctx, "notification", a.cfg.NotificationDatabaseURL, "notification-database-url")
	if err != nil {
		return err
	}
	conn, err := a.dial("user", a.cfg.UserServiceAddr)
	if err != nil {
		return settingError("user-service-addr", "%v", err)
	}
	users := notificationadapters.UserService{Client: userv1.NewUserServiceClient(conn)}
	svc, err := notification.New(notification.Config{
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
		Propagator:     a.tel.Propagator(),
	}, notification.Deps{DB: db, Followers: users, Users: users, Presence: a.infra.presence, Push: a.infra.pushPub}, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	router, err := a.eventRouter()
	if err != nil {
		return err
	}
	return svc.AddHandlers(router, a.infra.bus)
}

func (a *assembly) addPresence(ctx context.Context) error {
	db, err := a.openDatabase(ctx, "presence", a.cfg.PresenceDatabaseURL, "presence-database-url")
	if err != nil {
		return err
	}
	svc, err := presencesvc.New(presencesvc.Config{PresenceTTL: a.cfg.PresenceTTL}, presencesvc.Deps{DB: db, Presence: a.infra.presence}, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	router, err := a.eventRouter()
	if err != nil {
		return err
	}
	if err := svc.AddHandlers(router, a.infra.bus); err != nil {
		return err
	}
	a.g.Add("presence", svc.Run)
	return nil
}

// addDeadLetter runs the dead-letter archive, which `piazza dlq` operates on.
func (a *assembly) addDeadLetter(ctx context.Context) error {
	db, err := a.openDatabase(ctx, "deadletter", a.cfg.DeadLetterDatabaseURL, "deadletter-database-url")
	if err != nil {
		return err
	}
	sub, err := a.infra.bus.Subscriber(deadletter.ConsumerGroup)
	if err != nil {
		return err
	}
	svc, err := deadletter.New(deadletter.Config{
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
		Propagator:     a.tel.Propagator(),
	}, deadletter.Deps{DB: db, Publisher: a.infra.bus, Subscriber: sub}, a.log)
	if err != nil {
		return err
	}
	a.g.Add("deadletter", svc.Run)
	return nil
}

// dial connects to a gRPC service: in-process when it runs here, over the network otherwise.
func (a *assembly) dial(service, addr string) (*grpc.ClientConn, error) {
	if conn, ok := a.conns[service]; ok {
		return conn, nil
	}
	cc := rpc.ClientConfig{
		Target:         addr,
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
		Propagator:     a.tel.Propagator(),
	}
	switch {
	case a.cfg.Runs(service) && a.local != nil:
		cc.Target = "passthrough:///" + service
		cc.Options = append(cc.Options, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return a.local.DialContext(ctx)
		}))
	case a.cfg.Runs(service):
		cc.Target = a.cfg.GRPCAddr
	}
	conn, err := rpc.Dial(cc, a.log)
	if err != nil {
		return nil, err
	}
	a.infra.closer = append(a.infra.closer, conn.Close)
	if a.conns == nil {
		a.conns = map[string]*grpc.ClientConn{}
	}
	a.conns[service] = conn
	return conn, nil
}

func (a *assembly) addGateway() error {
	cfg := a.cfg
	conn, err := a.dial("user", cfg.UserServiceAddr)
	if err != nil {
		return settingError("user-service-addr", "%v", err)
	}
	users := userv1.NewUserServiceClient(conn)

	// Access tokens are verified locally: with the signing keys themselves when user-service
	// runs in this process, else with its published key set, cached.
	var keySource auth.KeySource = a.keys
	if a.keys == nil {
		cache, err := auth.NewJWKSCache(func(ctx context.Context) ([]byte, error) {
			resp, err := users.GetSigningKeys(ctx, &userv1.GetSigningKeysRequest{})
			if err != nil {
				return nil, err
			}
			return resp.GetJwks(), nil
		}, auth.JWKSCacheConfig{})
		if err != nil {
			return err
		}
		keySource = cache
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Keys: keySource, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
	if err != nil {
		return err
	}

	memory, err := ratelimit.NewMemory(ratelimit.MemoryConfig{})
	if err != nil {
		return err
	}
	var limiter gateway.RateLimiter = memory
	if a.infra.redis != nil {
		shared, err := ratelimit.NewRedis(ratelimit.RedisConfig{Client: a.infra.redis, Prefix: cfg.RedisPrefix + "gateway:"})
		if err != nil {
			return err
		}
		// While Redis fails, limits hold per instance instead of not at all.
		limiter, err = ratelimit.NewFallback(ratelimit.FallbackConfig{Primary: shared, Secondary: memory}, a.log)
		if err != nil {
			return err
		}
	}

	clients := map[string]*grpc.ClientConn{}
	for _, dep := range []struct{ service, addr, setting string }{
		{"post", cfg.PostServiceAddr, "post-service-addr"},
		{"notification", cfg.NotificationServiceAddr, "notification-service-addr"},
		{"presence", cfg.PresenceServiceAddr, "presence-service-addr"},
		{"messaging", cfg.MessagingServiceAddr, "messaging-service-addr"},
	} {
		conn, err := a.dial(dep.service, dep.addr)
		if err != nil {
			return settingError(dep.setting, "%v", err)
		}
		clients[dep.service] = conn
	}
	var ticketStore gateway.TicketStore = tickets.NewMemory(tickets.MemoryConfig{})
	if a.infra.redis != nil {
		ticketStore, err = tickets.NewRedis(tickets.RedisConfig{Client: a.infra.redis, Prefix: cfg.RedisPrefix + "gateway:ticket:"})
		if err != nil {
			return err
		}
	}
	publisher, err := events.NewPublisher(events.PublisherConfig{Publisher: a.infra.bus, TracerProvider: a.tel.TracerProvider(), Propagator: a.tel.Propagator()})
	if err != nil {
		return err
	}

	gw := gateway.New(gateway.Config{
		Addr:            cfg.HTTPAddr,
		RequestTimeout:  cfg.RequestTimeout,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Users:           users,
		Tokens:          verifier,
		Limiter:         limiter,
		TrustedProxies:  cfg.trustedProxies,
		RateLimits: gateway.RateLimits{
			LoginPerAddress:  cfg.LoginLimitPerAddress,
			LoginPerAccount:  cfg.LoginLimitPerAccount,
			SignupPerAddress: cfg.SignupLimitPerAddress,
			SignupPerAccount: cfg.SignupLimitPerAccount,
		},
		Posts:          postv1.NewPostServiceClient(clients["post"]),
		Notifications:  notificationv1.NewNotificationServiceClient(clients["notification"]),
		Presence:       presencev1.NewPresenceServiceClient(clients["presence"]),
		Messaging:      messagingv1.NewMessagingServiceClient(clients["messaging"]),
		PresenceStore:  a.infra.presence,
		Push:           a.infra.pushSub,
		InstanceID:     cfg.InstanceID,
		Events:         publisher,
		Tickets:        ticketStore,
		SSE:            stream.Tuning{PresenceTTL: cfg.PresenceTTL, PresenceRefresh: cfg.PresenceHeartbeat},
		TracerProvider: a.tel.TracerProvider(),
		MeterProvider:  a.tel.MeterProvider(),
		Propagator:     a.tel.Propagator(),
	}, a.log)
	a.g.Add("gateway", gw.Run)
	a.adm.AddCheck("gateway-listener", closedCheck(gw.Ready(), "the public listener is not bound yet"))
	return nil
}

func (a *assembly) addPost(ctx context.Context) error {
	db, err := a.openDatabase(ctx, "post", a.cfg.PostDatabaseURL, "post-database-url")
	if err != nil {
		return err
	}
	ob, err := outbox.New(outbox.Config{DB: db, Propagator: a.tel.Propagator()})
	if err != nil {
		return err
	}
	fwd, err := outbox.NewForwarder(outbox.ForwarderConfig{Outbox: ob, Publisher: a.infra.bus, MeterProvider: a.tel.MeterProvider(), TracerProvider: a.tel.TracerProvider()}, a.log.With("service", "post"))
	if err != nil {
		return err
	}
	conn, err := a.dial("user", a.cfg.UserServiceAddr)
	if err != nil {
		return settingError("user-service-addr", "%v", err)
	}
	svc, err := post.New(post.Config{}, post.Deps{
		DB: db, Outbox: ob, Follows: postadapters.NewUserFollowGraph(userv1.NewUserServiceClient(conn)),
	}, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	a.g.Add("post-outbox", fwd.Run)
	return nil
}

// closedCheck is a readiness check that passes once ready is closed.
func closedCheck(ready <-chan struct{}, notYet string) func(context.Context) error {
	return func(context.Context) error {
		select {
		case <-ready:
			return nil
		default:
			return errors.New(notYet)
		}
	}
}

// addMessaging runs messaging-service: on SQLite in the embedded default, on Cassandra when
// distributed, where it waits until the messaging-migration job (`piazza migrate cassandra`)
// has created its keyspace and brought the schema to the version this build needs.
func (a *assembly) addMessaging(ctx context.Context) error {
	cfg := a.cfg
	deps := messaging.Deps{Publisher: a.infra.bus}
	if cfg.Mode == Embedded {
		db, err := a.openDatabase(ctx, "messaging", "", "data-dir")
		if err != nil {
			return err
		}
		deps.DB = db
	} else {
		set := CassandraMigrations["messaging"]
		var (
			mu      sync.Mutex // the readiness check runs concurrently with the wait below
			session *gocql.Session
		)
		schemaReady := func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if session == nil {
				s, err := cassandra.Open(ctx, cassandra.Config{
					Hosts: cfg.CassandraHosts, Keyspace: cfg.CassandraKeyspace, LocalDC: cfg.CassandraLocalDC,
					Username: cfg.CassandraUsername, Password: cfg.CassandraPassword,
					TracerProvider: a.tel.TracerProvider(),
				}, a.log)
				if err != nil {
					return fmt.Errorf("%w (has `piazza migrate cassandra` created keyspace %q?)", err, cfg.CassandraKeyspace)
				}
				session = s
			}
			st, err := cassandra.Status(ctx, session, set, cfg.CassandraKeyspace)
			if err != nil {
				return err
			}
			if !st.UpToDate() {
				return fmt.Errorf("cassandra keyspace %s is at version %d of %q, this build needs %d: run `piazza migrate cassandra`",
					cfg.CassandraKeyspace, st.Current, set.Name, st.Latest)
			}
			return nil
		}
		a.adm.AddCheck("messaging-cassandra", schemaReady)
		if err := waitFor(ctx, a.log, "messaging cassandra schema", schemaReady); err != nil {
			return err
		}
		a.infra.closer = append(a.infra.closer, func() error { session.Close(); return nil })
		deps.Cassandra = session
	}
	svc, err := messaging.New(messaging.Config{Propagator: a.tel.Propagator(), MeterProvider: a.tel.MeterProvider()}, deps, a.log)
	if err != nil {
		return err
	}
	svc.Register(a.grpcServer)
	a.g.Add("messaging", svc.Run)
	return nil
}
