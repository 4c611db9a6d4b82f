package process

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/admin"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/push"
	"github.com/piazza-social/piazza/platform/telemetry"
)

// startupProbeTimeout bounds how long a dependency may take to answer at start-up before the
// process gives up with an error naming the setting.
const startupProbeTimeout = 10 * time.Second

// liveStore is a presence store that also tells whether given connections are live (both
// adapters are).
type liveStore interface {
	presence.Store
	presence.Liveness
}

// infrastructure is what the services of one process share: built once, closed once.
type infrastructure struct {
	bus   events.Bus
	redis *redis.Client // distributed mode, when a service here needs it
	// presence and routing of connections, and the per-instance push channel: in memory in the
	// embedded default (shared by the gateway and notification-service of the one process),
	// in Redis when distributed.
	presence liveStore
	pushPub  push.Publisher
	pushSub  push.Subscriber
	checks   map[string]admin.CheckFunc
	closer   []func() error
}

// Close releases everything in reverse order of opening.
func (in *infrastructure) Close(log *slog.Logger) {
	for i := len(in.closer) - 1; i >= 0; i-- {
		if err := in.closer[i](); err != nil {
			log.Warn("closing infrastructure", "error", err)
		}
	}
}

func openInfrastructure(ctx context.Context, cfg Config, tel *telemetry.Telemetry, log *slog.Logger) (_ *infrastructure, err error) {
	in := &infrastructure{checks: map[string]admin.CheckFunc{}}
	defer func() {
		if err != nil {
			in.Close(log)
		}
	}()
	switch cfg.Mode {
	case Embedded:
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, settingError("data-dir", "%v", err)
		}
		// The embedded bus is a durable log in its own SQLite file: events survive a restart and
		// are delivered at least once, as Kafka would.
		db, err := database.Open(ctx, database.Config{URL: "sqlite:" + filepath.Join(cfg.DataDir, "events.db")}, log)
		if err != nil {
			return nil, settingError("data-dir", "%v", err)
		}
		in.closer = append(in.closer, db.Close)
		bus, err := sqlbus.New(ctx, sqlbus.Config{DB: db}, log)
		if err != nil {
			return nil, settingError("data-dir", "%v", err)
		}
		in.closer = append(in.closer, bus.Close)
		in.bus = bus
		in.checks["event-bus"] = db.Ping
		mem, err := presence.NewMemory(presence.MemoryConfig{})
		if err != nil {
			return nil, err
		}
		in.presence = mem
		pm, err := push.NewMemory(push.MemoryConfig{MeterProvider: tel.MeterProvider()}, log)
		if err != nil {
			return nil, err
		}
		in.pushPub, in.pushSub = pm, pm
	case Distributed:
		pctx, cancel := context.WithTimeout(ctx, startupProbeTimeout)
		defer cancel()
		if err := kafkabus.Ping(pctx, cfg.KafkaBrokers); err != nil {
			return nil, settingError("kafka-brokers", "%s", strings.TrimPrefix(err.Error(), "kafkabus: "))
		}
		bus, err := kafkabus.New(kafkabus.Config{Brokers: cfg.KafkaBrokers, ClientID: cfg.InstanceID}, log)
		if err != nil {
			return nil, settingError("kafka-brokers", "%v", err)
		}
		in.closer = append(in.closer, bus.Close)
		in.bus = events.Namespaced(bus, cfg.BusNamespace)
		brokers := cfg.KafkaBrokers
		in.checks["kafka"] = func(ctx context.Context) error { return kafkabus.Ping(ctx, brokers) }
		if cfg.RedisAddr != "" {
			in.redis = redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
			// Redis calls are spans of the request's trace — never traces of their own, and
			// without the command text (it would record pushed payloads and tickets).
			if err := redisotel.InstrumentTracing(in.redis,
				redisotel.WithTracerProvider(telemetry.ChildSpansOnly(tel.TracerProvider())),
				redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
				return nil, err
			}
			in.closer = append(in.closer, in.redis.Close)
			if err := in.redis.Ping(pctx).Err(); err != nil {
				return nil, settingError("redis-addr", "Redis not reachable at %s: %v", cfg.RedisAddr, err)
			}
			in.checks["redis"] = func(ctx context.Context) error { return in.redis.Ping(ctx).Err() }
			rp, err := presence.NewRedis(presence.RedisConfig{Client: in.redis})
			if err != nil {
				return nil, err
			}
			in.presence = rp
			rpush, err := push.NewRedis(push.RedisConfig{Client: in.redis, MeterProvider: tel.MeterProvider()}, log)
			if err != nil {
				return nil, err
			}
			in.pushPub, in.pushSub = rpush, rpush
		}
	default:
		return nil, errors.New("unknown mode " + string(cfg.Mode))
	}
	return in, nil
}
