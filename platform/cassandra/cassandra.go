// Package cassandra is the Cassandra plumbing the services share: it opens a gocql session with
// the project's pooling, retry, consistency and tracing defaults (Open), and applies embedded,
// versioned CQL migrations exactly once even when several migrators start together (Migrate,
// Status).
//
// The driver is github.com/apache/cassandra-gocql-driver/v2 (package gocql); Open returns its
// *gocql.Session itself, so callers use the driver's API directly.
//
// Consistency. Reads and writes default to LOCAL_QUORUM and lightweight transactions to
// LOCAL_SERIAL: a majority of the replicas in the local data centre, which keeps
// read-your-writes when both sides use it, survives one replica down at RF 3 and never waits on
// a remote data centre. On a single node with replication factor 1 (development, tests) a local
// quorum is that one replica, so the same default works there and tests need no special level.
//
// Migrations. Schema changes run as a dedicated one-shot job (`piazza migrate cassandra`)
// before the services that depend on them, never from the services themselves: a service calls
// Status when it starts and in its readiness check, and stays not ready, naming the version it
// needs, until the job has brought the keyspace up to date.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// DefaultPort is the CQL native port used for a host given without one.
const DefaultPort = 9042

// Config describes the cluster to connect to and how. The zero value of every field but Hosts
// means "the default" documented on the field.
type Config struct {
	// Hosts are contact points, "host" or "host:port" (port default 9042). The rest of the ring
	// is discovered from them. At least one is required.
	Hosts []string
	// Keyspace is the session's keyspace, so statements may name tables without it. Empty: no
	// keyspace (statements qualify their tables, as the migrator does). Open fails when the
	// keyspace does not exist, which tells a service its migrations have not run.
	Keyspace string
	// Username and Password enable password authentication when Username is not empty.
	Username string
	Password string
	// LocalDC is the data centre this process runs in. When set, requests go to its nodes only
	// (token-aware within it), which LOCAL_QUORUM assumes. Empty: every node is eligible (fine
	// for one data centre).
	LocalDC string
	// Consistency of reads and writes. Default gocql.LocalQuorum (the zero value, ANY, cannot
	// be chosen: it allows writes no replica has stored).
	Consistency gocql.Consistency
	// SerialConsistency of lightweight transactions (IF NOT EXISTS, IF col = ...). Default
	// gocql.LocalSerial.
	SerialConsistency gocql.Consistency
	// ConnectTimeout bounds dialling a node and the setup queries of a new connection.
	// Default 5 seconds.
	ConnectTimeout time.Duration
	// Timeout bounds one request on the client side. It should exceed the server's own request
	// timeouts (write 2 s, read 5 s, range 10 s by default) so the server answers first.
	// Default 12 seconds.
	Timeout time.Duration
	// NumConns is the number of connections per node; each multiplexes thousands of requests.
	// Default 2.
	NumConns int
	// Retries is how many times a failed request marked idempotent (Query.Idempotent(true)) is
	// retried, on another node when one is available, with exponential backoff between 100 ms
	// and 2 s. Requests not marked idempotent are never retried: a timed-out write may have
	// been applied. Default 3; negative: no retries.
	Retries int
	// MaxWaitSchemaAgreement bounds how long a schema change waits for every node to agree on
	// the new schema. Default 60 seconds.
	MaxWaitSchemaAgreement time.Duration
	// TracerProvider makes a span for every request (attempt). Nil: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (c *Config) fillDefaults() {
	if c.Consistency == gocql.Any {
		c.Consistency = gocql.LocalQuorum
	}
	if c.SerialConsistency == gocql.Any {
		c.SerialConsistency = gocql.LocalSerial
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 12 * time.Second
	}
	if c.NumConns == 0 {
		c.NumConns = 2
	}
	if c.Retries == 0 {
		c.Retries = 3
	}
	if c.MaxWaitSchemaAgreement == 0 {
		c.MaxWaitSchemaAgreement = 60 * time.Second
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

func (c *Config) validate() error {
	var hosts []string
	for _, h := range c.Hosts {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	c.Hosts = hosts
	switch {
	case len(c.Hosts) == 0:
		return errors.New("cassandra: no hosts given")
	case c.ConnectTimeout < 0, c.Timeout < 0, c.MaxWaitSchemaAgreement < 0:
		return errors.New("cassandra: timeouts must not be negative")
	case c.NumConns < 0:
		return errors.New("cassandra: NumConns must not be negative")
	case c.SerialConsistency != gocql.Serial && c.SerialConsistency != gocql.LocalSerial:
		return fmt.Errorf("cassandra: SerialConsistency must be SERIAL or LOCAL_SERIAL, not %s", c.SerialConsistency)
	case c.Keyspace != "" && !validIdentifier(c.Keyspace):
		return fmt.Errorf("cassandra: keyspace %q is not a valid unquoted name ([A-Za-z][A-Za-z0-9_]*, at most 48 characters)", c.Keyspace)
	}
	return nil
}

// cluster builds the driver's configuration from a filled, validated Config.
func (c *Config) cluster(log *slog.Logger) *gocql.ClusterConfig {
	cl := gocql.NewCluster(c.Hosts...)
	cl.Port = DefaultPort
	cl.Keyspace = c.Keyspace
	cl.Consistency = c.Consistency
	cl.SerialConsistency = c.SerialConsistency
	cl.ConnectTimeout = c.ConnectTimeout
	cl.Timeout = c.Timeout
	cl.WriteTimeout = c.Timeout
	cl.NumConns = c.NumConns
	cl.MaxWaitSchemaAgreement = c.MaxWaitSchemaAgreement
	// Keepalive notices a silently dead peer (a node behind a dropped NAT entry) between
	// requests instead of on the next request's timeout.
	cl.SocketKeepalive = 30 * time.Second
	// Down nodes are retried in the background; a brief reconnection policy keeps a restarted
	// node from being marked down for a minute.
	cl.ReconnectInterval = 10 * time.Second
	cl.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 5, InitialInterval: 200 * time.Millisecond, MaxInterval: 5 * time.Second}
	if c.Retries > 0 {
		cl.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: c.Retries, Min: 100 * time.Millisecond, Max: 2 * time.Second}
	}
	// Token-aware routing sends a request straight to a replica of its partition (one hop
	// less); replicas are shuffled so one hot partition does not pin one node.
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback, gocql.ShuffleReplicas())
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	cl.Logger = slogLogger{log: log}
	tr := &tracer{tracer: c.TracerProvider.Tracer("github.com/piazza-social/piazza/platform/cassandra")}
	cl.QueryObserver = tr
	cl.BatchObserver = tr
	return cl
}

// Open connects to the cluster cfg describes and returns a session, safe for concurrent use,
// that the caller closes. It fails when no host answers within the connect timeout or the
// keyspace does not exist. log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*gocql.Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cluster := cfg.cluster(log)

	// The driver's constructor takes no context; run it aside so that a cancelled ctx returns
	// at once (the session, if it comes later, is closed).
	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := cluster.CreateSession()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("cassandra: connect to %s: %w", strings.Join(cfg.Hosts, ","), r.err)
		}
		log.InfoContext(ctx, "cassandra session open", "hosts", cfg.Hosts, "keyspace", cfg.Keyspace,
			"consistency", cfg.Consistency.String())
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra: connect to %s: %w", strings.Join(cfg.Hosts, ","), ctx.Err())
	}
}

// validIdentifier reports whether s is a keyspace or table name usable without quotes.
// Cassandra limits keyspace names to 48 characters.
func validIdentifier(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r >= '0' && r <= '9') || r == '_':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
