// Package infratest is for tests only: it gives integration tests the addresses of the real
// PostgreSQL, Redis, Kafka and Cassandra servers they run against, and a fresh PostgreSQL
// database per test.
//
// The addresses come from environment variables that scripts/infra/env.sh prints for the
// servers scripts/infra/up.sh starts (make test does both):
//
//	scripts/infra/up.sh && eval "$(scripts/infra/env.sh)" && go test -tags integration ./...
//
// Servers started another way (a Docker Compose file, a CI service) are used by exporting the
// same variables. A variable that is unset or empty fails the test at once with a message
// saying how to set it: a test built with the integration tag that silently skipped would
// prove nothing.
//
// Reading the environment here is deliberate: this package is the one place where tests learn
// their servers, so production code never has to.
package infratest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Names of the environment variables read by this package.
const (
	// EnvPostgresURL holds a postgres:// URL of a superuser allowed to CREATE DATABASE.
	EnvPostgresURL = "PIAZZA_TEST_POSTGRES_URL"
	// EnvRedisAddr holds the host:port of a Redis server.
	EnvRedisAddr = "PIAZZA_TEST_REDIS_ADDR"
	// EnvKafkaBrokers holds comma-separated host:port addresses of Kafka brokers.
	EnvKafkaBrokers = "PIAZZA_TEST_KAFKA_BROKERS"
	// EnvCassandraHosts holds comma-separated host:port addresses of Cassandra nodes.
	EnvCassandraHosts = "PIAZZA_TEST_CASSANDRA_HOSTS"
)

// howToSet is appended to every failure about a missing variable.
const howToSet = `start the test servers and export their addresses: ` +
	`scripts/infra/up.sh && eval "$(scripts/infra/env.sh)" (or run make test)`

// postgresTimeout bounds each administrative statement (CREATE/DROP DATABASE) so a hung
// server fails the test instead of hanging it until go test's global timeout.
const postgresTimeout = 30 * time.Second

// PostgresURL returns the URL of the test PostgreSQL server (a superuser allowed to create
// databases, connected to a maintenance database). Most tests want NewPostgresDatabase instead.
// It fails t when PIAZZA_TEST_POSTGRES_URL is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return require(t, EnvPostgresURL)
}

// RedisAddr returns the host:port of the test Redis server. It fails t when
// PIAZZA_TEST_REDIS_ADDR is unset.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return require(t, EnvRedisAddr)
}

// KafkaBrokers returns the host:port addresses of the test Kafka brokers, at least one. It
// fails t when PIAZZA_TEST_KAFKA_BROKERS is unset or lists no address.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	return requireList(t, EnvKafkaBrokers)
}

// CassandraHosts returns the host:port addresses of the test Cassandra nodes, at least one. It
// fails t when PIAZZA_TEST_CASSANDRA_HOSTS is unset or lists no address.
func CassandraHosts(t testing.TB) []string {
	t.Helper()
	return requireList(t, EnvCassandraHosts)
}

// NewPostgresDatabase creates an empty database with a unique name on the test PostgreSQL
// server and returns a URL connecting to it as the same superuser. The database is dropped
// when t's cleanups run, even if connections to it are still open (DROP ... WITH (FORCE)), so
// a test may leave its pool to a later cleanup. It fails t when the server is unreachable.
func NewPostgresDatabase(t testing.TB) string {
	t.Helper()
	server := PostgresURL(t)
	name, err := newDatabaseName(t.Name())
	if err != nil {
		t.Fatalf("infratest: naming a database: %v", err)
	}
	dbURL, err := databaseURL(server, name)
	if err != nil {
		t.Fatalf("infratest: %s: %v", EnvPostgresURL, err)
	}

	// Not t.Context(): it is cancelled before cleanups run, and the drop is a cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	if err := execAdmin(ctx, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("infratest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
		defer cancel()
		stmt := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
		if err := execAdmin(ctx, server, stmt); err != nil {
			t.Errorf("infratest: dropping database %s: %v", name, err)
		}
	})
	return dbURL
}

// execAdmin runs one statement on a short-lived connection of its own: CREATE/DROP DATABASE
// cannot run in a transaction block, and a pool would only outlive the call.
func execAdmin(ctx context.Context, serverURL, stmt string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	_, execErr := conn.Exec(ctx, stmt)
	return errors.Join(execErr, conn.Close(ctx))
}

func require(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		t.Fatalf("infratest: %s is not set; %s", name, howToSet)
	}
	return v
}

func requireList(t testing.TB, name string) []string {
	t.Helper()
	list := splitList(require(t, name))
	if len(list) == 0 {
		t.Fatalf("infratest: %s lists no address; %s", name, howToSet)
	}
	return list
}

// splitList splits a comma-separated list, trimming spaces and dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// databaseURL returns serverURL with its database replaced by name, keeping user, password,
// host and query parameters (sslmode and the like).
func databaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("want a postgres:// URL, got scheme %q", u.Scheme)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// maxIdentifier is PostgreSQL's identifier length limit (NAMEDATALEN-1); longer names are
// silently truncated, which could make two names collide.
const maxIdentifier = 63

// newDatabaseName returns a fresh database name: a prefix, a readable slug of the test name
// (so a database left behind by a killed run says where it came from) and random hex for
// uniqueness across parallel tests and packages. The name is lower-case [a-z0-9_] only.
func newDatabaseName(testName string) (string, error) {
	var random [8]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", err
	}
	suffix := "_" + hex.EncodeToString(random[:])
	const prefix = "infratest_"
	slug := slugify(testName, maxIdentifier-len(prefix)-len(suffix))
	return prefix + slug + suffix, nil
}

// slugify lower-cases s, maps every run of characters outside [a-z0-9] to one underscore and
// trims the result to at most limit bytes.
func slugify(s string, limit int) string {
	var b strings.Builder
	underscore := true // no leading underscore
	for _, r := range strings.ToLower(s) {
		if b.Len() >= limit {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
