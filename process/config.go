package process

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/piazza-social/piazza/platform/ratelimit"
)

// Mode says how a process finds its infrastructure.
type Mode string

const (
	// Embedded runs every service in one process on SQLite, with the event bus, presence and
	// routing in-process. Nothing else needs to be installed. (`piazza dev`)
	Embedded Mode = "embedded"
	// Distributed runs the selected services on real Kafka, Redis, PostgreSQL and Cassandra.
	// (`piazza serve --services=...`)
	Distributed Mode = "distributed"
)

// Config is the whole configuration of one process, read once in main from flags and PIAZZA_*
// environment variables (see platform/config) and validated before anything starts.
type Config struct {
	Mode Mode `json:"-"`

	Services   []string `flag:"services" help:"services to run in this process, comma-separated (distributed mode; the embedded default runs all): gateway"`
	InstanceID string   `flag:"instance-id" help:"unique id of this process among its peers (default: host name and a random suffix)"`

	HTTPAddr  string `flag:"http-addr" default:"127.0.0.1:8080" help:"address of the public HTTP API (gateway)"`
	AdminAddr string `flag:"admin-addr" default:"127.0.0.1:9090" help:"address of /metrics, /healthz and /readyz"`
	Pprof     bool   `flag:"pprof" help:"serve /debug/pprof on the admin address"`
	DataDir   string `flag:"data-dir" default:"./data" help:"embedded mode: directory of the SQLite databases"`

	KafkaBrokers []string `flag:"kafka-brokers" help:"distributed mode: Kafka bootstrap brokers, host:port,..."`
	BusNamespace string   `flag:"bus-namespace" help:"distributed mode: prefix of every Kafka topic and consumer group, so deployments can share a Kafka cluster (e.g. staging.)"`
	RedisAddr    string   `flag:"redis-addr" help:"distributed mode: Redis host:port (gateway: rate limits)"`
	RedisPrefix  string   `flag:"redis-prefix" default:"piazza:" help:"prefix of every Redis key of this deployment, so deployments can share a Redis"`

	GRPCAddr                string `flag:"grpc-addr" default:"127.0.0.1:9000" help:"distributed mode: address of this process's gRPC services"`
	UserServiceAddr         string `flag:"user-service-addr" help:"distributed mode: user-service gRPC address, when user runs elsewhere"`
	PostServiceAddr         string `flag:"post-service-addr" help:"distributed mode: post-service gRPC address, when post runs elsewhere"`
	NotificationServiceAddr string `flag:"notification-service-addr" help:"distributed mode: notification-service gRPC address, when notification runs elsewhere"`
	PresenceServiceAddr     string `flag:"presence-service-addr" help:"distributed mode: presence-service gRPC address, when presence runs elsewhere"`
	MessagingServiceAddr    string `flag:"messaging-service-addr" help:"distributed mode: messaging-service gRPC address, when messaging runs elsewhere"`
	UserDatabaseURL         string `flag:"user-database-url" help:"distributed mode: PostgreSQL URL of user-service (postgres://...)"`
	PostDatabaseURL         string `flag:"post-database-url" help:"distributed mode: PostgreSQL URL of post-service"`
	NotificationDatabaseURL string `flag:"notification-database-url" help:"distributed mode: PostgreSQL URL of notification-service"`
	PresenceDatabaseURL     string `flag:"presence-database-url" help:"distributed mode: PostgreSQL URL of presence-service"`
	DeadLetterDatabaseURL   string `flag:"deadletter-database-url" help:"distributed mode: PostgreSQL URL of the dead-letter archive"`

	CassandraHosts    []string `flag:"cassandra-hosts" help:"distributed mode: Cassandra contact points host:port,... (messaging)"`
	CassandraKeyspace string   `flag:"cassandra-keyspace" default:"piazza" help:"keyspace of the Cassandra tables (created by piazza migrate cassandra)"`
	CassandraLocalDC  string   `flag:"cassandra-local-dc" help:"Cassandra data centre to route requests to (empty: any)"`
	CassandraUsername string   `flag:"cassandra-username" help:"Cassandra user (empty: no authentication)"`
	CassandraPassword string   `flag:"cassandra-password" secret:"true" help:"Cassandra password"`

	// scaffold:config (scripts/add-service.sh adds the settings of new services above this line)

	PresenceTTL       time.Duration `flag:"presence-ttl" default:"60s" help:"lifetime of a connection's presence entry unless renewed"`
	PresenceHeartbeat time.Duration `flag:"presence-heartbeat" default:"20s" help:"how often a gateway renews its connections' presence entries"`
	EventMaxAttempts  int           `flag:"event-max-attempts" default:"5" help:"attempts of an event handler before the event goes to dead_letters"`
	Failpoint         string        `flag:"failpoint" help:"testing builds only: TYPE@PATH makes event handlers fail events of TYPE while the file PATH exists"`

	JWTKeysDir      string        `flag:"jwt-keys-dir" help:"user-service: directory of the Ed25519 signing keys (*.pem; the newest signs); embedded default: <data-dir>/keys"`
	JWTIssuer       string        `flag:"jwt-issuer" default:"piazza" help:"iss claim of access tokens"`
	JWTAudience     string        `flag:"jwt-audience" default:"piazza-api" help:"aud claim of access tokens"`
	AccessTokenTTL  time.Duration `flag:"access-token-ttl" default:"15m" help:"lifetime of an access token"`
	RefreshTokenTTL time.Duration `flag:"refresh-token-ttl" default:"720h" help:"lifetime of a refresh token (and of an idle session)"`

	Argon2MemoryKiB   int `flag:"argon2-memory-kib" default:"19456" help:"argon2id memory cost of new password hashes"`
	Argon2Iterations  int `flag:"argon2-iterations" default:"2" help:"argon2id time cost"`
	Argon2Parallelism int `flag:"argon2-parallelism" default:"1" help:"argon2id lanes"`

	TrustedProxies []string `flag:"trusted-proxies" help:"gateway: networks (CIDR) of the reverse proxies whose X-Forwarded-For names the client, e.g. 10.0.0.0/8"`
	trustedProxies []netip.Prefix

	LoginLimitPerAddress  ratelimit.Limit `flag:"login-limit-per-address" default:"10/1m:5" help:"login attempts per client address, RATE/PERIOD:BURST"`
	LoginLimitPerAccount  ratelimit.Limit `flag:"login-limit-per-account" default:"5/1m:5" help:"login attempts per account"`
	SignupLimitPerAddress ratelimit.Limit `flag:"signup-limit-per-address" default:"20/1h:10" help:"sign-ups per client address"`
	SignupLimitPerAccount ratelimit.Limit `flag:"signup-limit-per-account" default:"5/1m:5" help:"sign-up attempts per username or email"`

	LogLevel         slog.Level    `flag:"log-level" default:"info" help:"debug, info, warn or error"`
	OTLPEndpoint     string        `flag:"otlp-endpoint" env:"OTEL_EXPORTER_OTLP_ENDPOINT" help:"OTLP gRPC collector (host:port or URL); empty disables export"`
	TraceSampleRatio float64       `flag:"trace-sample-ratio" default:"1" help:"fraction of new traces sampled, in (0,1]"`
	ShutdownTimeout  time.Duration `flag:"shutdown-timeout" default:"15s" help:"how long draining may take on SIGTERM"`
	RequestTimeout   time.Duration `flag:"request-timeout" default:"10s" help:"upper bound of one public API request (streams excepted)"`
	MaxBodyBytes     int64         `flag:"max-body-bytes" default:"1048576" help:"largest accepted request body"`
}

// Known lists the services this binary can run, in start order.
var Known = []string{
	"user",
	"post",
	"notification",
	"presence",
	"messaging",
	"deadletter",
	// scaffold:known (scripts/add-service.sh adds new services above this line)
	"gateway",
}

// needsRedis lists the services that use Redis in distributed mode (presence, routing, push,
// shared rate limits).
var needsRedis = []string{"notification", "presence", "gateway"}

// settingError names a setting by its environment variable and flag, like config.Error.
func settingError(flagName, format string, args ...any) error {
	env := "PIAZZA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
	return fmt.Errorf("%s (--%s): %s", env, flagName, fmt.Sprintf(format, args...))
}

// Validate checks the settings against each other and fills derived defaults. Errors name the
// setting so a mistake reads as one clear line.
func (c *Config) Validate() error {
	switch c.Mode {
	case Embedded:
		if len(c.Services) > 0 {
			return settingError("services", "the embedded default runs every service; use `piazza serve` to choose")
		}
		c.Services = slices.Clone(Known)
		if len(c.KafkaBrokers) > 0 {
			return settingError("kafka-brokers", "the embedded default uses its in-process bus; use `piazza serve` for Kafka")
		}
		if c.DataDir == "" {
			return settingError("data-dir", "must not be empty")
		}
		if c.JWTKeysDir == "" {
			c.JWTKeysDir = filepath.Join(c.DataDir, "keys")
		}
	case Distributed:
		if len(c.Services) == 0 {
			return settingError("services", "name at least one of: %s", strings.Join(Known, ", "))
		}
		for _, s := range c.Services {
			if !slices.Contains(Known, s) {
				return settingError("services", "unknown service %q (known: %s)", s, strings.Join(Known, ", "))
			}
		}
		if len(c.KafkaBrokers) == 0 {
			return settingError("kafka-brokers", "required in distributed mode")
		}
		if c.Runs("user") && c.JWTKeysDir == "" {
			return settingError("jwt-keys-dir", "required to run user in distributed mode (the keys must be shared by its replicas)")
		}
		for _, need := range []struct{ service, setting, value string }{
			{"user", "user-database-url", c.UserDatabaseURL},
			{"post", "post-database-url", c.PostDatabaseURL},
			{"notification", "notification-database-url", c.NotificationDatabaseURL},
			{"presence", "presence-database-url", c.PresenceDatabaseURL},
			{"deadletter", "deadletter-database-url", c.DeadLetterDatabaseURL},
		} {
			if c.Runs(need.service) && need.value == "" {
				return settingError(need.setting, "required to run %s in distributed mode", need.service)
			}
		}
		if c.Runs("messaging") && len(c.CassandraHosts) == 0 {
			return settingError("cassandra-hosts", "required to run messaging in distributed mode")
		}
		for _, s := range needsRedis {
			if c.Runs(s) && c.RedisAddr == "" {
				return settingError("redis-addr", "required to run %s in distributed mode", s)
			}
		}
		// Each service's callers need its address unless it runs in the same process.
		for _, dep := range []struct {
			service, setting, value string
			callers                 []string
		}{
			{"user", "user-service-addr", c.UserServiceAddr, []string{"gateway", "post", "notification"}},
			{"post", "post-service-addr", c.PostServiceAddr, []string{"gateway"}},
			{"notification", "notification-service-addr", c.NotificationServiceAddr, []string{"gateway"}},
			{"presence", "presence-service-addr", c.PresenceServiceAddr, []string{"gateway"}},
			{"messaging", "messaging-service-addr", c.MessagingServiceAddr, []string{"gateway"}},
		} {
			if c.Runs(dep.service) || dep.value != "" {
				continue
			}
			for _, caller := range dep.callers {
				if c.Runs(caller) {
					return settingError(dep.setting, "required to run %s without %s in the same process", caller, dep.service)
				}
			}
		}
	default:
		return fmt.Errorf("unknown mode %q", c.Mode)
	}
	if c.TraceSampleRatio <= 0 || c.TraceSampleRatio > 1 {
		return settingError("trace-sample-ratio", "must be in (0,1], got %v", c.TraceSampleRatio)
	}
	if c.ShutdownTimeout <= 0 {
		return settingError("shutdown-timeout", "must be positive")
	}
	if c.RequestTimeout <= 0 {
		return settingError("request-timeout", "must be positive")
	}
	c.trustedProxies = c.trustedProxies[:0]
	for _, cidr := range c.TrustedProxies {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return settingError("trusted-proxies", "%q is not a network in CIDR form (e.g. 10.0.0.0/8)", cidr)
		}
		c.trustedProxies = append(c.trustedProxies, p.Masked())
	}
	if c.PresenceHeartbeat <= 0 || c.PresenceTTL < 2*c.PresenceHeartbeat {
		return settingError("presence-ttl", "must be at least twice --presence-heartbeat (%v), so one missed heartbeat does not end a connection", c.PresenceHeartbeat)
	}
	if c.EventMaxAttempts < 1 || c.EventMaxAttempts > 100 {
		return settingError("event-max-attempts", "must be in [1, 100]")
	}
	if c.AccessTokenTTL <= 0 {
		return settingError("access-token-ttl", "must be positive")
	}
	if c.RefreshTokenTTL <= c.AccessTokenTTL {
		return settingError("refresh-token-ttl", "must be longer than the access-token TTL")
	}
	if c.Argon2MemoryKiB < 8 || c.Argon2MemoryKiB > 4<<20 {
		return settingError("argon2-memory-kib", "must be in [8, 4194304]")
	}
	if c.Argon2Iterations < 1 || c.Argon2Iterations > 100 {
		return settingError("argon2-iterations", "must be in [1, 100]")
	}
	if c.Argon2Parallelism < 1 || c.Argon2Parallelism > 255 {
		return settingError("argon2-parallelism", "must be in [1, 255]")
	}
	if c.MaxBodyBytes <= 0 {
		return settingError("max-body-bytes", "must be positive")
	}
	if c.InstanceID == "" {
		id, err := defaultInstanceID()
		if err != nil {
			return err
		}
		c.InstanceID = id
	}
	return nil
}

// Runs reports whether this process runs the named service.
func (c *Config) Runs(service string) bool { return slices.Contains(c.Services, service) }

// defaultInstanceID is the host name plus a random suffix: unique among replicas on one host and
// across restarts, so a restarted gateway never inherits a dead one's routing entries.
func defaultInstanceID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "piazza"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.New("instance id: no randomness available")
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}
