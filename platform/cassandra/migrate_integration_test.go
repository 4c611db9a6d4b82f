//go:build integration

package cassandra_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// open returns a session with no keyspace, closed when the test ends.
func open(t *testing.T, hosts []string) *gocql.Session {
	t.Helper()
	s, err := cassandra.Open(ctxFor(t), cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// set builds a migration set from file name → content pairs.
func set(name string, kv ...string) cassandra.MigrationSet {
	fsys := fstest.MapFS{}
	for i := 0; i < len(kv); i += 2 {
		fsys["migrations/"+kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return cassandra.MigrationSet{Name: name, FS: fsys, Dir: "migrations"}
}

func count(t *testing.T, s *gocql.Session, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Query(query, args...).ScanContext(ctxFor(t), &n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func tableExists(t *testing.T, s *gocql.Session, keyspace, table string) bool {
	t.Helper()
	return count(t, s, `SELECT count(*) FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, keyspace, table) > 0
}

func TestMigrateCreatesTheKeyspaceAndASecondRunAppliesNothing(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	// The migrator creates the keyspace itself; start from none.
	if err := s.Query("DROP KEYSPACE " + ks).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	m := set("app",
		"0001_users.cql", "-- users\nCREATE TABLE users (id uuid PRIMARY KEY, name text);\nCREATE TABLE IF NOT EXISTS by_name (name text PRIMARY KEY, id uuid);\n",
		"0002_more.cql", "ALTER TABLE users ADD email text;",
	)

	applied, err := cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{})
	if err != nil || applied != 2 {
		t.Fatalf("first Migrate = %d, %v; want 2, nil", applied, err)
	}
	var repl map[string]string
	if err := s.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).ScanContext(ctx, &repl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(repl["class"], "SimpleStrategy") || repl["replication_factor"] != "1" {
		t.Errorf("keyspace replication = %v, want SimpleStrategy factor 1", repl)
	}
	if count(t, s, `SELECT count(*) FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'users' AND column_name = 'email'`, ks) != 1 {
		t.Error("the second file's column is missing")
	}

	applied, err = cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{})
	if err != nil || applied != 0 {
		t.Fatalf("second Migrate = %d, %v; want 0, nil", applied, err)
	}
	st, err := cassandra.Status(ctx, s, m, ks)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 2 || st.Latest != 2 || !st.UpToDate() || len(st.Applied) != 2 || st.Applied[0].Name != "0001_users.cql" {
		t.Fatalf("Status = %+v, want current 2 = latest, both applied", st)
	}
	if count(t, s, `SELECT count(*) FROM `+ks+`.schema_migrations_lock`) != 0 {
		t.Error("the lock row outlived the migration")
	}
}

func TestConcurrentMigratorsApplyEachStepExactlyOnce(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	// Counter increments are not idempotent: a step applied twice would show as 2.
	m := set("app",
		"0001_counter.cql", "CREATE TABLE IF NOT EXISTS hits (k int PRIMARY KEY, n counter);\nUPDATE hits SET n = n + 1 WHERE k = 1;",
		"0002_again.cql", "UPDATE hits SET n = n + 1 WHERE k = 2;",
		"0003_table.cql", "CREATE TABLE IF NOT EXISTS other (k int PRIMARY KEY);\nUPDATE hits SET n = n + 1 WHERE k = 3;",
	)
	sessions := []*gocql.Session{open(t, hosts), open(t, hosts)}
	ctx := ctxFor(t)

	const perSession = 2
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make(chan int, len(sessions)*perSession)
	errs := make(chan error, len(sessions)*perSession)
	for _, s := range sessions {
		for range perSession {
			wg.Go(func() {
				<-start
				n, err := cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{})
				results <- n
				errs <- err
			})
		}
	}
	close(start)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a migrator failed: %v", err)
		}
	}
	total := 0
	for n := range results {
		total += n
	}
	if total != 3 {
		t.Errorf("migrators applied %d steps in total, want 3", total)
	}
	s := sessions[0]
	for k := 1; k <= 3; k++ {
		var n int64
		if err := s.Query(`SELECT n FROM `+ks+`.hits WHERE k = ?`, k).ScanContext(ctx, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("step %d ran %d times, want once", k, n)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM `+ks+`.schema_migrations WHERE set_name = 'app'`); n != 3 {
		t.Errorf("%d recorded versions, want 3", n)
	}
}

func TestBrokenFileStopsWithItsNameAndLeavesItsVersionUnrecorded(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	good := "CREATE TABLE IF NOT EXISTS two (k int PRIMARY KEY);\nCREATE TABLE IF NOT EXISTS two_b (k int PRIMARY KEY);"
	broken := "CREATE TABLE IF NOT EXISTS two (k int PRIMARY KEY);\nCREATE TABLE two_b (k int PRIMARY KEY, v nosuchtype);"
	files := func(second string) cassandra.MigrationSet {
		return set("app",
			"0001_one.cql", "CREATE TABLE one (k int PRIMARY KEY);",
			"0002_two.cql", second,
			"0003_three.cql", "CREATE TABLE three (k int PRIMARY KEY);",
		)
	}

	applied, err := cassandra.Migrate(ctx, s, files(broken), ks, cassandra.MigrateOptions{})
	var me *cassandra.MigrationError
	if !errors.As(err, &me) || me.File != "0002_two.cql" || me.Statement != 2 {
		t.Fatalf("Migrate = %v, want a MigrationError for 0002_two.cql statement 2", err)
	}
	if !strings.Contains(err.Error(), "0002_two.cql") || !strings.Contains(err.Error(), "statement 2") {
		t.Errorf("error %q does not name the file and statement", err)
	}
	if applied != 1 {
		t.Errorf("applied = %d, want 1 (the step before the broken one)", applied)
	}
	st, err := cassandra.Status(ctx, s, files(broken), ks)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 1 || len(st.Pending) != 2 || st.Pending[0] != "0002_two.cql" {
		t.Fatalf("Status = %+v, want current 1 with 0002 and 0003 pending", st)
	}
	if tableExists(t, s, ks, "three") {
		t.Error("a file after the broken one was applied")
	}

	// The fix: the same version with corrected content (it was never recorded, so it may
	// change); its first statement ran already and is written to run again harmlessly.
	applied, err = cassandra.Migrate(ctx, s, files(good), ks, cassandra.MigrateOptions{})
	if err != nil || applied != 2 {
		t.Fatalf("Migrate after the fix = %d, %v; want 2, nil", applied, err)
	}
	if !tableExists(t, s, ks, "two_b") || !tableExists(t, s, ks, "three") {
		t.Error("tables of the fixed and following files are missing")
	}
}

func TestEditedAppliedFileIsRefused(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	if _, err := cassandra.Migrate(ctx, s, set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY);"), ks, cassandra.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	edited := set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY, v text);", "0002_b.cql", "CREATE TABLE b (k int PRIMARY KEY);")

	applied, err := cassandra.Migrate(ctx, s, edited, ks, cassandra.MigrateOptions{})
	var me *cassandra.MigrationError
	if !errors.Is(err, cassandra.ErrChecksumMismatch) || !errors.As(err, &me) || me.File != "0001_a.cql" || applied != 0 {
		t.Fatalf("Migrate = %d, %v; want ErrChecksumMismatch naming 0001_a.cql and nothing applied", applied, err)
	}
	if tableExists(t, s, ks, "b") {
		t.Error("a later file was applied despite the mismatch")
	}
	if _, err := cassandra.Status(ctx, s, edited, ks); !errors.Is(err, cassandra.ErrChecksumMismatch) {
		t.Errorf("Status error = %v, want ErrChecksumMismatch", err)
	}
}

func TestStatusBeforeAnythingIsAppliedListsEveryFile(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	m := set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY);", "0002_b.cql", "CREATE TABLE b (k int PRIMARY KEY);")

	for _, keyspace := range []string{ks, "no_such_keyspace_here"} {
		st, err := cassandra.Status(ctx, s, m, keyspace)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 0 || st.Latest != 2 || len(st.Pending) != 2 || st.UpToDate() {
			t.Errorf("Status(%s) = %+v, want current 0, latest 2, both pending", keyspace, st)
		}
	}
	// Sets sharing a keyspace are tracked apart.
	if _, err := cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := cassandra.Status(ctx, s, set("other", "0001_c.cql", "CREATE TABLE c (k int PRIMARY KEY);"), ks)
	if err != nil || st.Current != 0 || len(st.Pending) != 1 {
		t.Errorf("Status of another set = %+v, %v; want nothing applied", st, err)
	}
}

// takeLock plays a migrator that crashed holding the lock: a lock row that nobody renews.
func takeLock(t *testing.T, s *gocql.Session, ks, owner string, ttl time.Duration) {
	t.Helper()
	applied, err := s.Query(`INSERT INTO `+ks+`.schema_migrations_lock (name, owner, acquired_at) VALUES ('migrate', ?, ?) IF NOT EXISTS USING TTL ?`,
		owner, time.Now(), int(ttl/time.Second)).MapScanCASContext(ctxFor(t), map[string]any{})
	if err != nil || !applied {
		t.Fatalf("take the lock: applied=%v, %v", applied, err)
	}
}

func TestLockOfACrashedMigratorExpiresAndTheNextOneProceeds(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	m := set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY);")
	// A first run creates the bookkeeping tables.
	if _, err := cassandra.Migrate(ctx, s, set("boot", "0001_x.cql", "CREATE TABLE x (k int PRIMARY KEY);"), ks, cassandra.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	takeLock(t, s, ks, "crashed-host/1234", 2*time.Second)

	applied, err := cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{LockTimeout: time.Minute})
	if err != nil || applied != 1 {
		t.Fatalf("Migrate = %d, %v; want 1 once the dead lock expired", applied, err)
	}
}

func TestWaitingForALockHeldTooLongFailsNamingTheHolder(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	if _, err := cassandra.Migrate(ctx, s, set("boot", "0001_x.cql", "CREATE TABLE x (k int PRIMARY KEY);"), ks, cassandra.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	takeLock(t, s, ks, "busy-host/5678", time.Hour)

	m := set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY);")
	applied, err := cassandra.Migrate(ctx, s, m, ks, cassandra.MigrateOptions{LockTimeout: 500 * time.Millisecond})
	if !errors.Is(err, cassandra.ErrLockTimeout) || !strings.Contains(err.Error(), "busy-host/5678") || applied != 0 {
		t.Fatalf("Migrate = %d, %v; want ErrLockTimeout naming busy-host/5678", applied, err)
	}
	if tableExists(t, s, ks, "a") {
		t.Error("a migrator without the lock changed the schema")
	}
}

func TestNetworkTopologyReplicationIsCreatedAndMigrated(t *testing.T) {
	hosts, ks := cassandratest.NewKeyspace(t)
	s := open(t, hosts)
	ctx := ctxFor(t)
	var dc string
	if err := s.Query(`SELECT data_center FROM system.local`).ScanContext(ctx, &dc); err != nil {
		t.Fatal(err)
	}
	if err := s.Query("DROP KEYSPACE " + ks).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	m := set("app", "0001_a.cql", "CREATE TABLE a (k int PRIMARY KEY);\nINSERT INTO a (k) VALUES (1);")
	opts := cassandra.MigrateOptions{Replication: cassandra.Replication{DataCenters: map[string]int{dc: 1}}}

	if applied, err := cassandra.Migrate(ctx, s, m, ks, opts); err != nil || applied != 1 {
		t.Fatalf("Migrate = %d, %v; want 1, nil", applied, err)
	}
	var repl map[string]string
	if err := s.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).ScanContext(ctx, &repl); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(repl["class"], "NetworkTopologyStrategy") || repl[dc] != "1" {
		t.Errorf("replication = %v, want NetworkTopologyStrategy with %s: 1", repl, dc)
	}
	if n := count(t, s, `SELECT count(*) FROM `+ks+`.a`); n != 1 {
		t.Errorf("%d rows in a, want 1", n)
	}
}
