//go:build integration

package presence_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/presence/presencetest"
)

func newRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newRedisStore returns a store whose keys no other test shares.
func newRedisStore(t *testing.T, rdb redis.UniversalClient) (*presence.Redis, string) {
	t.Helper()
	prefix := "test:" + rand.Text() + ":"
	s, err := presence.NewRedis(presence.RedisConfig{Client: rdb, Prefix: prefix})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	return s, prefix
}

func TestRedisMeetsTheContract(t *testing.T) {
	rdb := newRedisClient(t)
	presencetest.Run(t, func(t *testing.T) presence.Store {
		s, _ := newRedisStore(t, rdb)
		return s
	})
}

func TestRedisUserPresenceKeyLivesAsLongAsTheLongestConnection(t *testing.T) {
	ctx := t.Context()
	rdb := newRedisClient(t)
	s, prefix := newRedisStore(t, rdb)
	key := prefix + "user_presence:alice"
	short := presence.Connection{UserID: "alice", ConnectionID: "c1", InstanceID: "gw-a"}
	longer := presence.Connection{UserID: "alice", ConnectionID: "c2", InstanceID: "gw-b"}

	if _, err := s.Register(ctx, short, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, longer, time.Hour); err != nil {
		t.Fatal(err)
	}
	members, err := rdb.ZRange(ctx, key, 0, -1).Result()
	if err != nil || len(members) != 2 || members[0] != "gw-a|c1" || members[1] != "gw-b|c2" {
		t.Fatalf("ZRANGE %s = %v, %v; want [gw-a|c1 gw-b|c2]", key, members, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL %s = %s, want the longest connection's (≤ 1h, > 1m)", key, ttl)
	}
	if _, err := s.Unregister(ctx, longer); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %s = %s after the longer connection left, want the remaining one's (≤ 1m)", key, ttl)
	}
	if _, err := s.Unregister(ctx, short); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("%s still exists after the last connection left", key)
	}
}

func TestRedisUserPresenceKeyExpiresWithItsConnections(t *testing.T) {
	ctx := t.Context()
	rdb := newRedisClient(t)
	s, prefix := newRedisStore(t, rdb)
	key := prefix + "user_presence:bob"
	if _, err := s.Register(ctx, presence.Connection{UserID: "bob", ConnectionID: "c", InstanceID: "gw-crashed"}, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Nobody unregisters (the gateway crashed): Redis expires the key by itself.
	deadline := time.Now().Add(30 * time.Second)
	for rdb.Exists(ctx, key).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists long after its only connection expired", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisWithoutPrefixUsesThePlatformKeyNames(t *testing.T) {
	ctx := t.Context()
	rdb := newRedisClient(t)
	s, err := presence.NewRedis(presence.RedisConfig{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	user := "it-" + rand.Text()
	c := presence.Connection{UserID: user, ConnectionID: "c", InstanceID: "gw-a"}
	t.Cleanup(func() { rdb.Del(context.Background(), "user_presence:"+user) })
	if _, err := s.Register(ctx, c, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "user_presence:"+user).Val(); n != 1 {
		t.Fatalf("user_presence:%s does not exist after Register", user)
	}
}

// BenchmarkRedisRoutes measures one routing lookup of a fan-out batch (1000 users, a third
// online): one pipelined round trip.
func BenchmarkRedisRoutes(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	s, err := presence.NewRedis(presence.RedisConfig{Client: rdb, Prefix: "bench:" + rand.Text() + ":"})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkRoutes(b, s)
}
