//go:build integration

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/logging"
)

// deployment is user-service and two gateway instances, each its own process, on the real
// PostgreSQL, Kafka and Redis.
type deployment struct {
	gw1, gw2 *client
}

func startDistributed(t *testing.T, gatewayArgs ...string) deployment {
	t.Helper()
	kafka := strings.Join(infratest.KafkaBrokers(t), ",")
	redisAddr := infratest.RedisAddr(t)
	keys := t.TempDir()
	if _, err := auth.GenerateKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	userAddr := freeAddr(t)
	start(t, "user-service", nil, append([]string{"serve", "--services=user",
		"--grpc-addr", userAddr,
		"--user-database-url", infratest.NewPostgresDatabase(t),
		"--jwt-keys-dir", keys,
		"--kafka-brokers", kafka,
	}, fastHashing...)...)

	// Each deployment has Redis keys of its own: limiter state of earlier runs must not leak in.
	prefix := "e2e" + uniqueSuffix() + ":"
	var gws []*client
	for _, name := range []string{"gateway-1", "gateway-2"} {
		httpAddr := freeAddr(t)
		start(t, name, nil, append([]string{"serve", "--services=gateway",
			"--http-addr", httpAddr,
			"--user-service-addr", userAddr,
			"--redis-addr", redisAddr,
			"--redis-prefix", prefix,
			"--kafka-brokers", kafka,
		}, gatewayArgs...)...)
		gws = append(gws, newClient(t, httpAddr))
	}
	return deployment{gw1: gws[0], gw2: gws[1]}
}

// uniqueSuffix keeps usernames of repeated runs apart in the shared Redis limiter keys.
func uniqueSuffix() string { return strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") }

func TestDistributedIdentityLifecycleAcrossTwoGateways(t *testing.T) {
	// Generous limits: this scenario signs up several users from one address.
	d := startDistributed(t, "--signup-limit-per-address=100/1m:100", "--login-limit-per-address=100/1m:100")

	// Watch the users topic: the outbox must bring user-service's events to Kafka.
	bus, err := kafkabus.New(kafkabus.Config{Brokers: infratest.KafkaBrokers(t), ClientID: "e2e"}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	sub, err := bus.Subscriber("e2e-" + uniqueSuffix())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(context.Background(), eventsv1.TopicUsers)
	if err != nil {
		t.Fatal(err)
	}

	suffix := uniqueSuffix()
	identityScenario(t, d.gw1, d.gw2, suffix)

	// alice's registration arrives on Kafka, with its envelope intact.
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-msgs:
			m.Ack()
			env, err := events.Decode(m)
			if err != nil {
				t.Fatalf("malformed event on %s: %v", eventsv1.TopicUsers, err)
			}
			var p eventsv1.UserRegisteredPayload
			if env.Type == eventsv1.UserRegistered && env.DecodePayload(&p) == nil && p.Username == "alice_"+suffix {
				if env.AggregateID != p.UserID || env.Producer == "" {
					t.Fatalf("envelope %+v", env)
				}
				return
			}
		case <-deadline:
			t.Fatal("user.registered of alice never reached Kafka")
		}
	}
}

func TestDistributedLoginLimitHoldsAcrossGatewayInstances(t *testing.T) {
	// Four attempts per account; the attempts alternate between the two gateways, so only a
	// limit shared through Redis stops the fifth.
	d := startDistributed(t, "--login-limit-per-account=4/1m:4")
	name := "eve_" + uniqueSuffix()
	signup(t, d.gw1, name)
	for i := range 4 {
		gw := []*client{d.gw1, d.gw2}[i%2]
		r := gw.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": name, "password": "not the password"})
		expect(t, "attempt within the limit", r, http.StatusUnauthorized, "unauthenticated")
	}
	r := d.gw2.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": name, "password": "not the password"})
	expect(t, "attempt over the shared limit", r, http.StatusTooManyRequests, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}
