// Package cassandratest is for tests only: it gives each integration test a keyspace of its own
// on the test Cassandra server (platform/infratest) and drops it afterwards.
package cassandratest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/infratest"
)

// adminTimeout bounds connecting and each CREATE/DROP KEYSPACE, so a hung server fails the test
// instead of hanging it until go test's global timeout.
const adminTimeout = 2 * time.Minute

// maxKeyspace is Cassandra's limit on keyspace names.
const maxKeyspace = 48

// NewKeyspace creates an empty keyspace with a unique name (SimpleStrategy, replication factor
// 1) on the test Cassandra server and returns the server's hosts and the keyspace's name. The
// keyspace is dropped when t's cleanups run. It fails t when the server is unreachable or
// PIAZZA_TEST_CASSANDRA_HOSTS is unset.
func NewKeyspace(t testing.TB) (hosts []string, keyspace string) {
	t.Helper()
	hosts = infratest.CassandraHosts(t)
	keyspace = newName(t)

	// Not t.Context(): it is cancelled before cleanups run, and the drop is a cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	session, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatalf("cassandratest: %v", err)
	}
	t.Cleanup(session.Close) // registered first, runs after the drop
	stmt := "CREATE KEYSPACE " + keyspace +
		" WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
	if err := exec(ctx, session, stmt); err != nil {
		t.Fatalf("cassandratest: creating keyspace %s: %v", keyspace, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := exec(ctx, session, "DROP KEYSPACE IF EXISTS "+keyspace); err != nil {
			t.Errorf("cassandratest: dropping keyspace %s: %v", keyspace, err)
		}
	})
	return hosts, keyspace
}

// exec runs a schema change and waits until every node agrees on the result, so that the
// next session (or the next test) sees it.
func exec(ctx context.Context, s *gocql.Session, stmt string) error {
	if err := s.Query(stmt).ExecContext(ctx); err != nil {
		return err
	}
	return s.AwaitSchemaAgreement(ctx)
}

// newName returns "it_" + a readable slug of the test's name (so a keyspace left behind by a
// killed run says where it came from) + random hex for uniqueness across parallel tests and
// packages: lower-case [a-z0-9_], at most 48 characters.
func newName(t testing.TB) string {
	t.Helper()
	var random [6]byte
	if _, err := rand.Read(random[:]); err != nil {
		t.Fatalf("cassandratest: naming a keyspace: %v", err)
	}
	const prefix = "it_"
	suffix := "_" + hex.EncodeToString(random[:])
	return prefix + slugify(t.Name(), maxKeyspace-len(prefix)-len(suffix)) + suffix
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
