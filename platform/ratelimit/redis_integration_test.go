//go:build integration

package ratelimit_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/platform/ratelimit/ratelimittest"
)

func newRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newRedisLimiter returns a limiter whose keys no other test shares.
func newRedisLimiter(t *testing.T, rdb redis.UniversalClient) *ratelimit.Redis {
	t.Helper()
	l, err := ratelimit.NewRedis(ratelimit.RedisConfig{Client: rdb, Prefix: "test:" + rand.Text() + ":"})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	return l
}

func TestRedisMeetsTheContract(t *testing.T) {
	rdb := newRedisClient(t)
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter { return newRedisLimiter(t, rdb) })
}

func TestRedisLimitIsSharedByEveryInstance(t *testing.T) {
	// Two gateway instances: separate clients and limiters, same Redis and prefix.
	prefix := "test:" + rand.Text() + ":"
	var instances [2]ratelimit.Limiter
	for i := range instances {
		l, err := ratelimit.NewRedis(ratelimit.RedisConfig{Client: newRedisClient(t), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		instances[i] = l
	}
	lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 4}
	allowed := 0
	for i := range 10 {
		if mustAllow(t, instances[i%2], "login:alice", lim).Allowed {
			allowed++
		}
	}
	if allowed != lim.Burst {
		t.Fatalf("%d requests allowed across two instances, want the one shared burst of %d", allowed, lim.Burst)
	}
}
