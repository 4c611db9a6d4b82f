package ratelimit

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a Redis limiter.
type RedisConfig struct {
	// Client is the Redis connection (a *redis.Client, *redis.ClusterClient or ring). The
	// caller keeps ownership and closes it. Required.
	Client redis.UniversalClient
	// Prefix is put in front of every key, so that several limiters (or test runs) share a
	// Redis without colliding, e.g. "piazza:gateway:". Required. The Redis key of key k is
	// "rate:" + Prefix + k ("rate:" is added by redis_rate).
	Prefix string
}

// Redis is a GCRA limiter whose state lives in Redis, so that every process using the same
// Redis and Prefix shares each limit. Each decision is one atomic Lua script run on the
// server, timed by the server's clock (github.com/go-redis/redis_rate). A key's state expires
// from Redis once it has fully recovered.
//
// Allow returns Redis failures (connection refused, timeout) as errors; see the package doc
// for what to do with them.
type Redis struct {
	rl     *redis_rate.Limiter
	prefix string
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Redis limiter. It does not contact Redis.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("ratelimit: RedisConfig.Client is required")
	case cfg.Prefix == "":
		return nil, errors.New("ratelimit: RedisConfig.Prefix is required")
	}
	return &Redis{rl: redis_rate.NewLimiter(cfg.Client), prefix: cfg.Prefix}, nil
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if err := checkRequest(key, l); err != nil {
		return Result{}, err
	}
	res, err := r.rl.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst})
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if res.Allowed > 0 {
		return Result{Allowed: true, Remaining: res.Remaining}, nil
	}
	// redis_rate computes in float seconds; keep the contract 0 < RetryAfter even if rounding
	// brought it to zero.
	return Result{RetryAfter: max(res.RetryAfter, 1)}, nil
}
