package main

import (
	"bytes"
	"errors"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/process"
)

// runMigrateTest runs `piazza migrate args...` with the given environment and sets and returns
// its stdout and stderr.
func runMigrateTest(t *testing.T, env map[string]string, sets migrationSets, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := migrate(t.Context(), args, &out, &errOut, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, sets)
	return out.String(), errOut.String(), err
}

func binarySets() migrationSets {
	return migrationSets{relational: process.RelationalMigrations, cassandra: process.CassandraMigrations}
}

// relationalSet builds a relational migration set from file name → content pairs.
func relationalSet(name string, kv ...string) database.MigrationSet {
	fsys := fstest.MapFS{}
	for i := 0; i < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return database.MigrationSet{Name: name, FS: fsys}
}

var appliedLine = regexp.MustCompile(`^([a-z]+)/([a-z]+): applied (\d+) \(now at (\d+)\)$`)

// appliedCounts parses the command's output into "service/set" → applied count, failing on
// any other line.
func appliedCounts(t *testing.T, out string) map[string]string {
	t.Helper()
	counts := map[string]string{}
	for line := range strings.Lines(out) {
		m := appliedLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("unexpected output line %q", line)
		}
		counts[m[1]+"/"+m[2]] = m[3]
	}
	return counts
}

func TestMigratePostgresAppliesEveryServicesSetsOnceAndASecondRunAppliesNothing(t *testing.T) {
	dir := t.TempDir()
	args := []string{"postgres"}
	for _, service := range relationalServices {
		args = append(args, "--"+service+"-database-url", "sqlite:"+filepath.Join(dir, service+".db"))
	}

	out, errOut, err := runMigrateTest(t, nil, binarySets(), args...)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, errOut)
	}
	first := appliedCounts(t, out)
	want := 0
	for service, sets := range process.RelationalMigrations {
		for _, set := range sets {
			want++
			if n, ok := first[service+"/"+set.Name]; !ok || n == "0" {
				t.Errorf("first run: %s/%s applied %q, want at least one step", service, set.Name, n)
			}
		}
	}
	if len(first) != want {
		t.Errorf("first run printed %d sets, want %d:\n%s", len(first), want, out)
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

	// status agrees: everything is at its latest version.
	statusArgs := append([]string{"status"}, args[1:]...)
	if out, errOut, err := runMigrateTest(t, nil, binarySets(), statusArgs...); err != nil || strings.Contains(out, "pending") {
		t.Fatalf("status after migrating: %v\n%s%s", err, out, errOut)
	}
}

func TestMigratePostgresOnlyMigratesServicesGivenAndReadsTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	shared := "sqlite:" + filepath.Join(dir, "shared.db")
	sets := migrationSets{relational: map[string][]database.MigrationSet{
		"user":     {relationalSet("user", "0001_a.sql", "CREATE TABLE a (k INTEGER)"), relationalSet("outbox", "0001_o.sql", "CREATE TABLE o (k INTEGER)")},
		"post":     {relationalSet("post", "0001_p.sql", "CREATE TABLE p (k INTEGER)"), relationalSet("outbox", "0001_o.sql", "CREATE TABLE o (k INTEGER)")},
		"presence": {relationalSet("presence", "0001_s.sql", "CREATE TABLE s (k INTEGER)")},
	}}
	env := map[string]string{"PIAZZA_USER_DATABASE_URL": shared}

	out, errOut, err := runMigrateTest(t, env, sets, "postgres", "--post-database-url", shared)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	// Both services share one database: the outbox set applies once, for the first of them.
	want := "user/user: applied 1 (now at 1)\nuser/outbox: applied 1 (now at 1)\npost/post: applied 1 (now at 1)\npost/outbox: applied 0 (now at 1)\n"
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestMigratePostgresStopsAtABrokenFileWithOneLineNamingIt(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "user.db")
	sets := migrationSets{relational: map[string][]database.MigrationSet{
		"user": {
			relationalSet("user", "0001_ok.sql", "CREATE TABLE a (k INTEGER)", "0002_broken.sql", "CREATE TABLE (oops", "0003_later.sql", "CREATE TABLE c (k INTEGER)"),
			relationalSet("outbox", "0001_o.sql", "CREATE TABLE o (k INTEGER)"),
		},
	}}
	out, _, err := runMigrateTest(t, nil, sets, "postgres", "--user-database-url", url)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") || !strings.Contains(err.Error(), "user/user") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want one line naming user/user and 0002_broken.sql", err)
	}
	if out != "" {
		t.Errorf("printed %q for a set that failed", out)
	}

	out, _, err = runMigrateTest(t, nil, sets, "status", "--user-database-url", url)
	if err == nil || !strings.Contains(err.Error(), "not up to date: user/user, user/outbox") {
		t.Fatalf("status error %v, want not up to date naming both sets", err)
	}
	want := "user/user: at 1 of 3, pending 0002_broken.sql, 0003_later.sql\nuser/outbox: at 0 of 1, pending 0001_o.sql\n"
	if out != want {
		t.Fatalf("status output:\n%s\nwant:\n%s", out, want)
	}
}

func TestMigrateCassandraWithoutSetsDoesNotConnect(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) never answers: reaching it would hang until the connect timeout.
	out, errOut, err := runMigrateTest(t, nil, migrationSets{}, "cassandra", "--cassandra-hosts", "192.0.2.1")
	if err != nil || out != "cassandra: no migration sets\n" {
		t.Fatalf("got %q, %v (%s); want the no-sets line", out, err, errOut)
	}
}

func TestMigrateMistakesFailWithOneLineNamingTheProblem(t *testing.T) {
	someSet := migrationSets{cassandra: map[string]cassandra.MigrationSet{"messaging": {Name: "messaging", FS: fstest.MapFS{}}}}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown target", nil, []string{"mysql"}, `unknown migrate target "mysql"`},
		{"postgres without any database", nil, []string{"postgres"}, "--user-database-url"},
		{"postgres with a bad URL", nil, []string{"postgres", "--user-database-url", "mysql://x"}, "user: database: unsupported URL scheme"},
		{"cassandra flag on the postgres target", nil, []string{"postgres", "--cassandra-hosts", "h"}, "cassandra-hosts"},
		{"stray argument", nil, []string{"postgres", "--user-database-url", "sqlite::memory:", "now"}, `unexpected argument "now"`},
		{"cassandra without hosts", nil, []string{"cassandra"}, "PIAZZA_CASSANDRA_HOSTS (--cassandra-hosts): required"},
		{"replication factor zero", nil, []string{"cassandra", "--cassandra-hosts", "h", "--cassandra-replication-factor", "0"}, "PIAZZA_CASSANDRA_REPLICATION_FACTOR"},
		{"bad dc replication", nil, []string{"cassandra", "--cassandra-hosts", "h", "--cassandra-dc-replication", "dc1=3"}, `"dc1=3" is not dc:factor`},
		{"status without any database", nil, []string{"status"}, "give at least one database"},
		{"bad environment value", map[string]string{"PIAZZA_TIMEOUT": "soon"}, []string{"postgres"}, "PIAZZA_TIMEOUT (--timeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runMigrateTest(t, tc.env, someSet, tc.args...)
			if err == nil {
				t.Fatalf("piazza migrate %v succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestMigrateDCReplicationSelectsNetworkTopology(t *testing.T) {
	c := migrateCassandraConfig{ReplicationFactor: 1, DCReplication: []string{"dc1:3", "dc2:2"}}
	r, err := c.replication()
	if err != nil || r.DataCenters["dc1"] != 3 || r.DataCenters["dc2"] != 2 {
		t.Fatalf("replication() = %+v, %v; want dc1:3 dc2:2", r, err)
	}
}

func TestMigrateWithoutTargetPrintsUsage(t *testing.T) {
	_, errOut, err := runMigrateTest(t, nil, binarySets())
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "usage: piazza migrate") {
		t.Fatalf("no target: %v, stderr %q; want ErrHelp and the usage", err, errOut)
	}
	out, _, err := runMigrateTest(t, nil, binarySets(), "help")
	if err != nil || !strings.Contains(out, "cassandra ") {
		t.Fatalf("help: %v, %q", err, out)
	}
	_, errOut, err = runMigrateTest(t, nil, binarySets(), "cassandra", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "-cassandra-replication-factor") ||
		!strings.Contains(errOut, "PIAZZA_CASSANDRA_KEYSPACE") || strings.Contains(errOut, "database-url") {
		t.Fatalf("cassandra -h: %v, stderr %q; want ErrHelp and only the cassandra flags with their variables", err, errOut)
	}
}
