//go:build integration

package tickets_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/services/gateway/tickets"
	"github.com/piazza-social/piazza/services/gateway/tickets/ticketstest"
)

func newRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func newRedisStore(t *testing.T, rdb redis.UniversalClient, prefix string) *tickets.Redis {
	t.Helper()
	s, err := tickets.NewRedis(tickets.RedisConfig{Client: rdb, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRedisMeetsTheContract(t *testing.T) {
	rdb := newRedisClient(t)
	ticketstest.Run(t, func(t *testing.T) tickets.Store {
		// A prefix of its own per test: no test sees another's tickets.
		return newRedisStore(t, rdb, "test:tickets:"+rand.Text()+":")
	})
}

func TestRedisTicketIssuedByOneInstanceIsRedeemedAtAnother(t *testing.T) {
	prefix := "test:tickets:" + rand.Text() + ":"
	issuer := newRedisStore(t, newRedisClient(t), prefix)
	redeemer := newRedisStore(t, newRedisClient(t), prefix)
	ctx := context.Background()
	want := tickets.Ticket{UserID: "u-9", SessionID: "s-9", ExpiresAt: time.Now().Add(time.Minute).UTC()}
	if err := issuer.Put(ctx, "shared", want, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := redeemer.Take(ctx, "shared")
	if err != nil || got.UserID != want.UserID || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("Take at the other instance = %+v, %v", got, err)
	}
	if _, err := issuer.Take(ctx, "shared"); err != tickets.ErrNotFound {
		t.Fatalf("Take at the issuer after redemption: %v, want ErrNotFound", err)
	}
}

func TestRedisKeysExpireInRedisItself(t *testing.T) {
	prefix := "test:tickets:" + rand.Text() + ":"
	rdb := newRedisClient(t)
	s := newRedisStore(t, rdb, prefix)
	ctx := context.Background()
	if err := s.Put(ctx, "ttl", tickets.Ticket{UserID: "u"}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, prefix+"ttl").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("PTTL %s, want within (0, 30s]: an unredeemed ticket must not outlive its TTL", ttl)
	}
}
