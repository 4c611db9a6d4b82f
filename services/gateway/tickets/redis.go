package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a [Redis] store.
type RedisConfig struct {
	// Client is the Redis connection; the caller keeps ownership and closes it. Required.
	Client redis.UniversalClient
	// Prefix is put in front of every key, e.g. "piazza:gateway:ticket:", so that several
	// deployments (or test runs) share a Redis without colliding. Required; every gateway
	// instance that may redeem another's tickets uses the same one.
	Prefix string
}

// Redis is a Store in Redis, shared by every gateway instance that uses the same Redis and
// Prefix: a ticket issued by one instance is redeemed by whichever instance the stream reaches.
// Put is SET NX with the TTL (Redis expires the key itself), Take is GETDEL (Redis 6.2+), so a
// ticket is redeemed at most once however many instances race for it.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Redis store. It does not contact Redis.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("tickets: RedisConfig.Client is required")
	case cfg.Prefix == "":
		return nil, errors.New("tickets: RedisConfig.Prefix is required")
	}
	return &Redis{rdb: cfg.Client, prefix: cfg.Prefix}, nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, id string, t Ticket, ttl time.Duration) error {
	if err := checkPut(id, ttl); err != nil {
		return err
	}
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("tickets: encode: %w", err)
	}
	// go-redis sends PX for a TTL that is not whole seconds, EX otherwise.
	ok, err := r.rdb.SetNX(ctx, r.prefix+id, v, ttl).Result()
	switch {
	case err != nil:
		return fmt.Errorf("tickets: redis SET NX: %w", err)
	case !ok:
		return ErrExists
	}
	return nil
}

// Take implements Store.
func (r *Redis) Take(ctx context.Context, id string) (Ticket, error) {
	v, err := r.rdb.GetDel(ctx, r.prefix+id).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return Ticket{}, ErrNotFound
	case err != nil:
		return Ticket{}, fmt.Errorf("tickets: redis GETDEL: %w", err)
	}
	var t Ticket
	if err := json.Unmarshal(v, &t); err != nil {
		return Ticket{}, fmt.Errorf("tickets: decode ticket: %w", err)
	}
	return t, nil
}
