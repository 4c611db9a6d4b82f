package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
)

// RedisConfig configures a Redis pub/sub.
type RedisConfig struct {
	// Client is the Redis connection. The caller keeps ownership and closes it; each
	// subscription holds one connection of its own while it lasts. Required.
	Client redis.UniversalClient
	// Prefix is put in front of every channel name, so that several deployments (or test
	// runs) can share a Redis: the channel of instance i is Prefix + "gateway_events:" + i.
	// Default "" (the platform's channel names, literally).
	Prefix string
	// Buffer is the capacity of each subscription's channel. Default DefaultBuffer.
	Buffer int
	// LogInterval is the minimum interval between two warnings about dropped messages.
	// Default DefaultLogInterval.
	LogInterval time.Duration
	// MeterProvider makes the push.dropped counter; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Redis publishes with PUBLISH and subscribes with SUBSCRIBE on gateway_events:<instance_id>.
//
// A subscription survives connection loss: go-redis notices a dead connection (a failed read,
// or a failed health-check ping every few seconds), reconnects and subscribes again by itself.
// Messages published while it was disconnected are lost, as Pub/Sub always loses them for an
// absent subscriber; the gateway's gap detection and inbox replay make up for them.
//
// Each subscription runs one reader goroutine that moves messages from the connection to the
// subscription's bounded channel and never blocks on it (see the package doc), so that Redis
// never sees a stalled subscriber.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	buffer int
	drops  *drops
	log    *slog.Logger
}

var (
	_ Publisher  = (*Redis)(nil)
	_ Subscriber = (*Redis)(nil)
)

// NewRedis returns a Redis pub/sub. It does not contact Redis. log (may be nil) receives the
// warnings about drops.
func NewRedis(cfg RedisConfig, log *slog.Logger) (*Redis, error) {
	if cfg.Client == nil {
		return nil, errors.New("push: RedisConfig.Client is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	buffer, err := bufferOf(cfg.Buffer)
	if err != nil {
		return nil, err
	}
	d, err := newDrops(cfg.MeterProvider, log, cfg.LogInterval)
	if err != nil {
		return nil, err
	}
	return &Redis{rdb: cfg.Client, prefix: cfg.Prefix, buffer: buffer, drops: d, log: log}, nil
}

func (r *Redis) channel(instanceID string) string { return r.prefix + Channel(instanceID) }

// Publish implements Publisher. A message for an instance nobody subscribes to is discarded
// by Redis; that is no error.
func (r *Redis) Publish(ctx context.Context, instanceID string, msg []byte) error {
	if instanceID == "" {
		return ErrEmptyInstance
	}
	if err := r.rdb.Publish(ctx, r.channel(instanceID), msg).Err(); err != nil {
		return fmt.Errorf("push: publish to %s: %w", instanceID, err)
	}
	return nil
}

// Subscribe implements Subscriber. It returns once Redis has confirmed the subscription.
func (r *Redis) Subscribe(ctx context.Context, instanceID string) (<-chan []byte, error) {
	if instanceID == "" {
		return nil, ErrEmptyInstance
	}
	channel := r.channel(instanceID)
	ps := r.rdb.Subscribe(ctx, channel)
	// The first reply on the connection is the confirmation (or the error of SUBSCRIBE).
	reply, err := ps.Receive(ctx)
	if err == nil {
		if _, ok := reply.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected reply %T", reply)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("push: subscribe to %s: %w", channel, err)
	}
	// go-redis's own reader (with its reconnects and health checks) feeds in; this adapter
	// empties in at once, so that reader never waits on it.
	in := ps.Channel(redis.WithChannelSize(r.buffer))
	out := make(chan []byte, r.buffer)
	go func() {
		for {
			select {
			case <-ctx.Done():
				close(out)
				if err := ps.Close(); err != nil {
					r.log.DebugContext(ctx, "push: closing subscription", slog.String("channel", channel), slog.String("error", err.Error()))
				}
				for range in {
					// Let go-redis's reader finish; it closes in when it has stopped.
				}
				return
			case m, ok := <-in:
				if !ok { // closed only after ps.Close, which only this goroutine calls
					close(out)
					return
				}
				select {
				case out <- []byte(m.Payload):
				default:
					r.drops.drop(ctx, instanceID)
				}
			}
		}
	}()
	return out, nil
}
