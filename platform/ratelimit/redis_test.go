package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/ratelimit"
)

// The Redis limiter's behaviour against a real server is in redis_integration_test.go; these
// tests need no server.

func TestRedisFailureIsReturned(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	l, err := ratelimit.NewRedis(ratelimit.RedisConfig{Client: rdb, Prefix: "test:"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Allow(context.Background(), "k", ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1})
	if err == nil || res.Allowed {
		t.Fatalf("Allow with Redis down = %+v, %v; want an error and no permission", res, err)
	}
	if errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("a connection failure was reported as an invalid limit: %v", err)
	}
}

func TestNewRedisRequiresClientAndPrefix(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	for name, cfg := range map[string]ratelimit.RedisConfig{
		"no client": {Prefix: "p:"},
		"no prefix": {Client: rdb},
	} {
		if _, err := ratelimit.NewRedis(cfg); err == nil {
			t.Errorf("%s: NewRedis succeeded", name)
		}
	}
}
