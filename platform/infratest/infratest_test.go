package infratest

import (
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// fatalRecorder stands in for a testing.TB and records a Fatalf instead of failing the real
// test; like the real one it stops the calling goroutine.
type fatalRecorder struct {
	testing.TB // nil: calling anything not overridden here panics, which would be a bug
	failed     bool
	message    string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.message = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// record runs f against a fatalRecorder on its own goroutine, as testing does.
func record(f func(t testing.TB)) *fatalRecorder {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestAccessorsReturnTheirVariables(t *testing.T) {
	t.Setenv(EnvPostgresURL, "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable")
	t.Setenv(EnvRedisAddr, " 127.0.0.1:16379 ")
	t.Setenv(EnvKafkaBrokers, "127.0.0.1:19092, 127.0.0.2:19092,")
	t.Setenv(EnvCassandraHosts, "127.0.0.1:19042")

	if got := PostgresURL(t); got != "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable" {
		t.Errorf("PostgresURL = %q", got)
	}
	if got := RedisAddr(t); got != "127.0.0.1:16379" {
		t.Errorf("RedisAddr = %q, want it trimmed", got)
	}
	if got, want := KafkaBrokers(t), []string{"127.0.0.1:19092", "127.0.0.2:19092"}; !slices.Equal(got, want) {
		t.Errorf("KafkaBrokers = %q, want %q", got, want)
	}
	if got, want := CassandraHosts(t), []string{"127.0.0.1:19042"}; !slices.Equal(got, want) {
		t.Errorf("CassandraHosts = %q, want %q", got, want)
	}
}

func TestAccessorsFailWithInstructionsWhenUnset(t *testing.T) {
	accessors := []struct {
		name, env string
		call      func(t testing.TB)
	}{
		{"PostgresURL", EnvPostgresURL, func(t testing.TB) { PostgresURL(t) }},
		{"RedisAddr", EnvRedisAddr, func(t testing.TB) { RedisAddr(t) }},
		{"KafkaBrokers", EnvKafkaBrokers, func(t testing.TB) { KafkaBrokers(t) }},
		{"CassandraHosts", EnvCassandraHosts, func(t testing.TB) { CassandraHosts(t) }},
		// Checked before any connection attempt, so no server is needed here.
		{"NewPostgresDatabase", EnvPostgresURL, func(t testing.TB) { NewPostgresDatabase(t) }},
	}
	for value, what := range map[string]string{"": "empty", "   ": "blank"} {
		for _, a := range accessors {
			t.Run(a.name+"/"+what, func(t *testing.T) {
				t.Setenv(a.env, value)
				r := record(a.call)
				if !r.failed {
					t.Fatal("the test was not failed")
				}
				for _, want := range []string{a.env, `eval "$(scripts/infra/env.sh)"`, "make test"} {
					if !strings.Contains(r.message, want) {
						t.Errorf("message %q does not mention %q", r.message, want)
					}
				}
			})
		}
	}
}

func TestListAccessorsFailWhenTheListIsEmpty(t *testing.T) {
	t.Setenv(EnvKafkaBrokers, " , ,")
	r := record(func(t testing.TB) { KafkaBrokers(t) })
	if !r.failed || !strings.Contains(r.message, "lists no address") {
		t.Errorf("failed=%v message=%q, want a failure saying the list is empty", r.failed, r.message)
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a:1", []string{"a:1"}},
		{"a:1,b:2", []string{"a:1", "b:2"}},
		{" a:1 , b:2 ,, ", []string{"a:1", "b:2"}},
		{"", nil},
		{",", nil},
	}
	for _, tt := range tests {
		if got := splitList(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDatabaseURLReplacesOnlyTheDatabase(t *testing.T) {
	tests := []struct {
		server, want string
	}{
		{
			"postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable",
			"postgres://postgres@127.0.0.1:15432/infratest_x?sslmode=disable",
		},
		{
			"postgresql://user:p%40ss@db.example:5432/maint?sslmode=require&application_name=t",
			"postgresql://user:p%40ss@db.example:5432/infratest_x?sslmode=require&application_name=t",
		},
		{"postgres://127.0.0.1:15432", "postgres://127.0.0.1:15432/infratest_x"},
	}
	for _, tt := range tests {
		got, err := databaseURL(tt.server, "infratest_x")
		if err != nil || got != tt.want {
			t.Errorf("databaseURL(%q) = %q, %v; want %q", tt.server, got, err, tt.want)
		}
	}
}

func TestDatabaseURLRejectsWhatIsNotAPostgresURL(t *testing.T) {
	for _, server := range []string{
		"host=127.0.0.1 port=15432 user=postgres", // keyword/value form: not supported
		"mysql://root@127.0.0.1/db",
		"postgres://bad host:1/x",
	} {
		if got, err := databaseURL(server, "x"); err == nil {
			t.Errorf("databaseURL(%q) = %q, want an error", server, got)
		}
	}
}

var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func TestNewDatabaseNameIsAUniqueValidIdentifier(t *testing.T) {
	for _, testName := range []string{
		"TestOutbox",
		"TestOutbox/publishes_in_order#01",
		"Test" + strings.Repeat("VeryLong/Sub Test ", 20),
		"Ünïcödé/テスト",
	} {
		a, errA := newDatabaseName(testName)
		b, errB := newDatabaseName(testName)
		if errA != nil || errB != nil {
			t.Fatalf("newDatabaseName(%q): %v, %v", testName, errA, errB)
		}
		if a == b {
			t.Errorf("newDatabaseName(%q) returned %q twice", testName, a)
		}
		if len(a) > maxIdentifier || !identifier.MatchString(a) {
			t.Errorf("newDatabaseName(%q) = %q: not a valid unquoted identifier of at most %d bytes", testName, a, maxIdentifier)
		}
	}
	if name, _ := newDatabaseName("TestOutbox/publishes_in_order#01"); !strings.HasPrefix(name, "infratest_testoutbox_publishes_in_order_01_") {
		t.Errorf("name %q does not say which test made it", name)
	}
}

func TestSlugify(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"TestA", 20, "testa"},
		{"TestA/b c#01", 20, "testa_b_c_01"},
		{"__Test__", 20, "test"},
		{"TestABCDEF", 4, "test"},
		{"Test/abc", 5, "test"}, // never ends in an underscore
		{"!!!", 10, ""},
	}
	for _, tt := range tests {
		if got := slugify(tt.in, tt.limit); got != tt.want {
			t.Errorf("slugify(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
	}
}
