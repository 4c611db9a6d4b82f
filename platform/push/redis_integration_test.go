//go:build integration

package push_test

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/push"
	"github.com/piazza-social/piazza/platform/push/pushtest"
)

func newRedisClient(t *testing.T, name string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(t), ClientName: name})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func newRedis(t *testing.T, cfg push.RedisConfig) *push.Redis {
	t.Helper()
	r, err := push.NewRedis(cfg, nil)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	return r
}

func TestRedisMeetsTheContract(t *testing.T) {
	// A publisher and a subscriber on clients of their own, as notification-service and a
	// gateway would be.
	pubClient, subClient := newRedisClient(t, ""), newRedisClient(t, "")
	pushtest.Run(t, func(t *testing.T) (push.Publisher, push.Subscriber) {
		prefix := "test:" + rand.Text() + ":"
		return newRedis(t, push.RedisConfig{Client: pubClient, Prefix: prefix}),
			newRedis(t, push.RedisConfig{Client: subClient, Prefix: prefix})
	})
}

func TestRedisPublishesOnTheGatewayEventsChannel(t *testing.T) {
	ctx := t.Context()
	rdb := newRedisClient(t, "")
	instance := "it-" + rand.Text()
	raw := rdb.Subscribe(ctx, "gateway_events:"+instance)
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := newRedis(t, push.RedisConfig{Client: rdb}).Publish(ctx, instance, []byte("batch")); err != nil {
		t.Fatal(err)
	}
	m, err := raw.ReceiveMessage(ctx)
	if err != nil || m.Payload != "batch" {
		t.Fatalf("received %+v, %v on gateway_events:%s; want the published batch", m, err, instance)
	}
}

func TestRedisSubscriptionSurvivesALostConnection(t *testing.T) {
	ctx := t.Context()
	name := "push-it-" + strings.ToLower(rand.Text())
	admin, subClient := newRedisClient(t, ""), newRedisClient(t, name)
	prefix := "test:" + rand.Text() + ":"
	pub := newRedis(t, push.RedisConfig{Client: admin, Prefix: prefix})
	ch, err := newRedis(t, push.RedisConfig{Client: subClient, Prefix: prefix}).Subscribe(ctx, "gw-a")
	if err != nil {
		t.Fatal(err)
	}

	killed := 0
	for line := range strings.SplitSeq(admin.ClientList(ctx).Val(), "\n") {
		if !strings.Contains(line, " name="+name+" ") || !strings.Contains(line, " sub=1 ") {
			continue
		}
		id, _ := strings.CutPrefix(strings.Fields(line)[0], "id=")
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			t.Fatalf("CLIENT LIST line %q: %v", line, err)
		}
		if err := admin.ClientKillByFilter(ctx, "ID", strconv.FormatInt(n, 10)).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed != 1 {
		t.Fatalf("killed %d subscriber connections named %s, want 1", killed, name)
	}

	// Messages published before the resubscription are lost (that is Pub/Sub); keep publishing
	// until one arrives.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := pub.Publish(ctx, "gw-a", []byte("after-kill")); err != nil {
			t.Fatal(err)
		}
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed when its connection was killed")
			}
			if string(m) == "after-kill" {
				return
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("no message arrived after the subscriber's connection was killed")
}

func TestRedisDropsAndCountsWhatASlowReceiverCannotTake(t *testing.T) {
	ctx := t.Context()
	reader := sdkmetric.NewManualReader()
	rdb := newRedisClient(t, "")
	prefix := "test:" + rand.Text() + ":"
	r := newRedis(t, push.RedisConfig{Client: rdb, Prefix: prefix, Buffer: 4,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if _, err := r.Subscribe(ctx, "gw-a"); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := r.Publish(ctx, "gw-a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// At most 2×4 messages fit in the two buffers of the subscription (go-redis's and ours);
	// the reader drops the rest as they arrive.
	deadline := time.Now().Add(30 * time.Second)
	for droppedCount(t, reader, "gw-a") < n-8 {
		if time.Now().After(deadline) {
			t.Fatalf("push.dropped = %d, want at least %d", droppedCount(t, reader, "gw-a"), n-8)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkRedisPublishToReceive measures one message from PUBLISH to the subscriber's channel.
func BenchmarkRedisPublishToReceive(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: infratest.RedisAddr(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	r, err := push.NewRedis(push.RedisConfig{Client: rdb, Prefix: "bench:" + rand.Text() + ":"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkPublishToReceive(b, r, r)
}
