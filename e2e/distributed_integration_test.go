//go:build integration

package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/logging"
)

// deployment is every service in its own process, plus two gateway instances, on the real
// PostgreSQL, Kafka and Redis.
type deployment struct {
	gw1, gw2         *client
	gw2proc          *proc
	procs            map[string]*proc // by name: user-service, …, gateway-1, gateway-2
	order            []string         // names in start order
	deadLetterDB     string
	kafka, failpoint string
	namespace        string // the --bus-namespace of its processes
}

func startDistributed(t *testing.T, gatewayArgs ...string) deployment {
	t.Helper()
	return startDistributedWith(t, nil, gatewayArgs...)
}

// startDistributedWith starts the deployment with extra environment for every process (e.g.
// OTEL_EXPORTER_OTLP_ENDPOINT) and extra flags for every service.
func startDistributedWith(t *testing.T, env []string, extraArgs ...string) deployment {
	t.Helper()
	kafka := strings.Join(infratest.KafkaBrokers(t), ",")
	redisAddr := infratest.RedisAddr(t)
	// Each deployment has Redis keys of its own: limiter state of earlier runs must not leak in.
	suffix := uniqueSuffix()
	prefix := "e2e" + suffix + ":"
	keys := t.TempDir()
	if _, err := auth.GenerateKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	d := deployment{kafka: kafka, deadLetterDB: infratest.NewPostgresDatabase(t), failpoint: filepath.Join(t.TempDir(), "fail-likes"),
		procs: map[string]*proc{}}
	launch := func(name string, args ...string) *proc {
		p := start(t, name, env, args...)
		d.procs[name] = p
		d.order = append(d.order, name)
		return p
	}
	// Its own Redis keys, Kafka topics and consumer groups: deployments of other tests (and
	// earlier runs) on the same servers must not see each other's state or events.
	d.namespace = "e2e" + suffix + "."
	common := []string{"--kafka-brokers", kafka, "--redis-addr", redisAddr, "--redis-prefix", prefix, "--bus-namespace", d.namespace,
		"--presence-ttl=3s", "--presence-heartbeat=1s", "--event-max-attempts=3"}
	addrs := map[string]string{}
	serve := func(name string, args ...string) *proc {
		addr := freeAddr(t)
		addrs[name] = addr
		return launch(name+"-service", append(append(append([]string{"serve", "--services=" + name, "--grpc-addr", addr}, common...), extraArgs...), args...)...)
	}
	// The migration job runs first, as in the compose file: services never migrate on their own.
	dbs := map[string]string{}
	for _, svc := range []string{"user", "post", "notification", "presence"} {
		dbs[svc] = infratest.NewPostgresDatabase(t)
	}
	dbs["deadletter"] = d.deadLetterDB
	var migrateArgs []string
	for svc, url := range dbs {
		migrateArgs = append(migrateArgs, "--"+svc+"-database-url", url)
	}
	migrate(t, append([]string{"postgres"}, migrateArgs...)...)
	// messaging-migration: the keyspace and its tables, before messaging-service starts.
	cassHosts, keyspace := cassandratest.NewKeyspace(t)
	cass := []string{"--cassandra-hosts", strings.Join(cassHosts, ","), "--cassandra-keyspace", keyspace}
	migrate(t, append([]string{"cassandra"}, cass...)...)

	serve("user", append([]string{"--user-database-url", dbs["user"], "--jwt-keys-dir", keys}, fastHashing...)...)
	peers := func() []string {
		return []string{"--user-service-addr", addrs["user"], "--post-service-addr", addrs["post"],
			"--notification-service-addr", addrs["notification"], "--presence-service-addr", addrs["presence"],
			"--messaging-service-addr", addrs["messaging"]}
	}
	serve("post", "--post-database-url", dbs["post"], "--user-service-addr", addrs["user"])
	serve("notification", "--notification-database-url", dbs["notification"], "--user-service-addr", addrs["user"],
		"--failpoint=post.liked@"+d.failpoint)
	serve("presence", "--presence-database-url", dbs["presence"])
	serve("deadletter", "--deadletter-database-url", d.deadLetterDB)
	serve("messaging", cass...)

	var gws []*client
	for _, name := range []string{"gateway-1", "gateway-2"} {
		httpAddr := freeAddr(t)
		p := launch(name, append(append(append([]string{"serve", "--services=gateway", "--http-addr", httpAddr}, common...), peers()...), extraArgs...)...)
		gws = append(gws, newClient(t, httpAddr))
		d.gw2proc = p
	}
	d.gw1, d.gw2 = gws[0], gws[1]
	return d
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
	msgs, err := sub.Subscribe(context.Background(), d.namespace+eventsv1.TopicUsers)
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

func TestDistributedRealtimeAcrossGatewaysWithReplayDeadLettersAndPresence(t *testing.T) {
	d := startDistributed(t, "--signup-limit-per-address=100/1m:100", "--login-limit-per-address=100/1m:100")
	token, name := realtimeScenario(t, realtime{
		gw1: d.gw1, gw2: d.gw2, failpoint: d.failpoint,
		dlq: func(args ...string) string {
			return runDLQ(t, nil, append(args, "--deadletter-database-url", d.deadLetterDB, "--kafka-brokers", d.kafka, "--bus-namespace", d.namespace)...)
		},
	}, uniqueSuffix())

	// Presence: online while A holds a stream on gateway 2; offline, with a last-seen time,
	// once gateway 2 dies without a word and its entries age out.
	d.gw2.openStream(token, "")
	waitPresence(t, d.gw1, token, name, true)
	d.gw2proc.kill(t)
	p := waitPresence(t, d.gw1, token, name, false)
	if p["last_seen_at"] == nil {
		t.Fatalf("offline without last_seen_at: %v", p)
	}
}

// kill ends the process with SIGKILL, as a crash would; its cleanup then expects nothing.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
	p.killed = true
}

// migrate runs `piazza migrate args...` and requires success.
func migrate(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"migrate"}, args...)...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("piazza migrate %s: %v\n%s", args[0], err, out)
	}
}

func TestDistributedDirectMessagesOnCassandra(t *testing.T) {
	d := startDistributed(t, "--signup-limit-per-address=100/1m:100")
	messagingScenario(t, d.gw1, d.gw2, uniqueSuffix())
}

// stopAll ends every process with SIGTERM, gateways first, which also flushes their telemetry.
func (d deployment) stopAll(t *testing.T) {
	t.Helper()
	for i := len(d.order) - 1; i >= 0; i-- {
		d.procs[d.order[i]].stop(t)
	}
}
