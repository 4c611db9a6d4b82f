//go:build integration

package main

import (
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
	"github.com/piazza-social/piazza/platform/infratest"
)

func TestMigratePostgresOnRealDatabasesTwiceIsANoOp(t *testing.T) {
	shared := infratest.NewPostgresDatabase(t)
	args := []string{"postgres",
		"--user-database-url", infratest.NewPostgresDatabase(t),
		"--post-database-url", infratest.NewPostgresDatabase(t),
		"--notification-database-url", shared,
		"--presence-database-url", shared,
		"--deadletter-database-url", shared,
	}
	out, errOut, err := runMigrateTest(t, nil, binarySets(), args...)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, errOut)
	}
	for set, n := range appliedCounts(t, out) {
		if n == "0" {
			t.Errorf("first run applied nothing of %s", set)
		}
	}
	out, errOut, err = runMigrateTest(t, nil, binarySets(), args...)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, errOut)
	}
	for set, n := range appliedCounts(t, out) {
		if n != "0" {
			t.Errorf("second run applied %s steps of %s, want 0", n, set)
		}
	}
	if out, errOut, err := runMigrateTest(t, nil, binarySets(), append([]string{"status"}, args[1:]...)...); err != nil {
		t.Fatalf("status: %v\n%s%s", err, out, errOut)
	}
}

func TestMigrateCassandraAppliesTheSetsOnceEvenWhenTwoJobsRunAtOnce(t *testing.T) {
	hosts, keyspace := cassandratest.NewKeyspace(t)
	sets := migrationSets{cassandra: map[string]cassandra.MigrationSet{
		"messaging": {Name: "messaging", FS: fstest.MapFS{
			"0001_messages.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS messages (id int PRIMARY KEY, body text);\n")},
			"0002_counted.cql":  {Data: []byte("CREATE TABLE IF NOT EXISTS runs (k int PRIMARY KEY, n counter);\nUPDATE runs SET n = n + 1 WHERE k = 1;\n")},
		}},
	}}
	env := map[string]string{"PIAZZA_CASSANDRA_HOSTS": strings.Join(hosts, ",")}
	args := []string{"cassandra", "--cassandra-keyspace", keyspace}

	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() { outs[i], _, errs[i] = runMigrateTest(t, env, sets, args...) })
	}
	wg.Wait()
	total := 0
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("job %d: %v", i, errs[i])
		}
		switch outs[i] {
		case "messaging/messaging: applied 2 (now at 2)\n":
			total += 2
		case "messaging/messaging: applied 0 (now at 2)\n":
		default:
			// One job may apply step 1 and the other step 2 only if the lock failed.
			t.Fatalf("job %d printed %q, want all or nothing applied", i, outs[i])
		}
	}
	if total != 2 {
		t.Errorf("the two jobs applied %d steps, want 2", total)
	}

	out, errOut, err := runMigrateTest(t, env, sets, args...)
	if err != nil || out != "messaging/messaging: applied 0 (now at 2)\n" {
		t.Fatalf("third run: %q, %v\n%s", out, err, errOut)
	}
	out, errOut, err = runMigrateTest(t, env, sets, "status", "--cassandra-keyspace", keyspace)
	if err != nil || out != "messaging/messaging: at 2 of 2\n" {
		t.Fatalf("status: %q, %v\n%s", out, err, errOut)
	}
}
