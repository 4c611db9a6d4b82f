//go:build integration

package cassandratest

import (
	"context"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/cassandra"
)

func TestNewKeyspaceCreatesAKeyspaceAndDropsItAfterTheTest(t *testing.T) {
	var hosts []string
	var keyspace string
	t.Run("inner", func(t *testing.T) {
		hosts, keyspace = NewKeyspace(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Opening a session in the keyspace fails unless it exists.
		s, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts, Keyspace: keyspace}, nil)
		if err != nil {
			t.Fatalf("open in the new keyspace: %v", err)
		}
		defer s.Close()
		if err := s.Query("CREATE TABLE t (k int PRIMARY KEY)").ExecContext(ctx); err != nil {
			t.Fatalf("create a table in the new keyspace: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.Query("SELECT count(*) FROM system_schema.keyspaces WHERE keyspace_name = ?", keyspace).
		ScanContext(ctx, &n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("keyspace %s still exists after the test's cleanup", keyspace)
	}
}
