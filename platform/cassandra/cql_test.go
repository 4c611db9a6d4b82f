package cassandra

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one statement with semicolon", "CREATE TABLE a (k int PRIMARY KEY);\n", []string{"CREATE TABLE a (k int PRIMARY KEY)"}},
		{"last semicolon optional", "CREATE TABLE a (k int PRIMARY KEY)", []string{"CREATE TABLE a (k int PRIMARY KEY)"}},
		{"several statements over several lines", "CREATE TABLE a (\n  k int PRIMARY KEY\n);\nCREATE TABLE b (k int PRIMARY KEY);\n",
			[]string{"CREATE TABLE a (\n  k int PRIMARY KEY\n)", "CREATE TABLE b (k int PRIMARY KEY)"}},
		{"line comments of both kinds are dropped", "-- first\nCREATE TABLE a (k int PRIMARY KEY); // trailing; with semicolon\n// only a comment;\n",
			[]string{"CREATE TABLE a (k int PRIMARY KEY)"}},
		{"block comment spanning lines and semicolons", "/* header;\n more; */\nINSERT INTO a (k) VALUES (1);",
			[]string{"INSERT INTO a (k) VALUES (1)"}},
		{"block comment inside a statement separates tokens", "SELECT/*x*/k FROM a;", []string{"SELECT k FROM a"}},
		{"semicolon and comment markers inside a string literal", "INSERT INTO a (k, v) VALUES (1, 'x; -- y; /* z */');\n",
			[]string{"INSERT INTO a (k, v) VALUES (1, 'x; -- y; /* z */')"}},
		{"escaped quote in a literal", "INSERT INTO a (v) VALUES ('it''s; fine');", []string{"INSERT INTO a (v) VALUES ('it''s; fine')"}},
		{"quoted identifier with semicolon", `CREATE TABLE "we;ird" (k int PRIMARY KEY);`, []string{`CREATE TABLE "we;ird" (k int PRIMARY KEY)`}},
		{"dollar-quoted function body", "CREATE FUNCTION f (x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$;\nSELECT 1;",
			[]string{"CREATE FUNCTION f (x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$", "SELECT 1"}},
		{"empty statements skipped", ";;\n  ;\nSELECT 1;;", []string{"SELECT 1"}},
		{"only comments and blanks", "-- nothing\n\n/* here */\n", nil},
		{"windows line endings", "SELECT 1;\r\nSELECT 2;\r\n", []string{"SELECT 1", "SELECT 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitStatements(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("splitStatements(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSplitStatementsRejectsUnterminatedLiteralsAndComments(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1;\nINSERT INTO a (v) VALUES ('oops);\n", "string literal or quoted identifier starting on line 2"},
		{"CREATE TABLE \"a (k int);", "quoted identifier starting on line 1"},
		{"SELECT 1;\n\n/* never closed", "/* comment starting on line 3"},
		{"CREATE FUNCTION f AS $$ return 1;", "$$ body starting on line 1"},
	}
	for _, tc := range tests {
		_, err := splitStatements(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("splitStatements(%q) = %v, want an error mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestLoadMigrationsOrdersByVersionAndIgnoresOtherFiles(t *testing.T) {
	set := MigrationSet{Name: "s", Dir: "m", FS: fstest.MapFS{
		"m/0010_later.cql":   {Data: []byte("SELECT 10;")},
		"m/0002_second.cql":  {Data: []byte("SELECT 2;\nSELECT 22;")},
		"m/1_first.cql":      {Data: []byte("SELECT 1")},
		"m/README.md":        {Data: []byte("not a migration")},
		"m/0003_x.sql":       {Data: []byte("not cql")},
		"m/sub/0004_sub.cql": {Data: []byte("SELECT 4;")},
	}}
	steps, err := loadMigrations(set)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, s := range steps {
		files = append(files, s.file)
	}
	if want := []string{"1_first.cql", "0002_second.cql", "0010_later.cql"}; !reflect.DeepEqual(files, want) {
		t.Fatalf("files = %v, want %v", files, want)
	}
	if len(steps[1].statements) != 2 || steps[1].version != 2 {
		t.Errorf("second step = %+v, want version 2 with 2 statements", steps[1])
	}
	if steps[0].checksum == steps[1].checksum || len(steps[0].checksum) != 64 {
		t.Errorf("checksums look wrong: %q %q", steps[0].checksum, steps[1].checksum)
	}
}

func TestLoadMigrationsRejectsBrokenSets(t *testing.T) {
	tests := []struct {
		name     string
		set      MigrationSet
		wantFile string
		want     string
	}{
		{"no name", MigrationSet{FS: fstest.MapFS{}}, "", "no name"},
		{"no FS", MigrationSet{Name: "s"}, "", "no FS"},
		{"missing dir", MigrationSet{Name: "s", FS: fstest.MapFS{}, Dir: "nope"}, "", "read nope"},
		{"duplicate version", MigrationSet{Name: "s", FS: fstest.MapFS{
			"01_a.cql": {Data: []byte("SELECT 1;")}, "1_b.cql": {Data: []byte("SELECT 1;")}}}, "", "appears twice"},
		{"version zero", MigrationSet{Name: "s", FS: fstest.MapFS{"0000_a.cql": {Data: []byte("SELECT 1;")}}}, "0000_a.cql", "positive"},
		{"empty file", MigrationSet{Name: "s", FS: fstest.MapFS{"0001_a.cql": {Data: []byte("-- todo\n")}}}, "0001_a.cql", "no statement"},
		{"unterminated literal", MigrationSet{Name: "s", FS: fstest.MapFS{"0001_a.cql": {Data: []byte("INSERT INTO a (v) VALUES ('x);")}}},
			"0001_a.cql", "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadMigrations(tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadMigrations = %v, want an error mentioning %q", err, tc.want)
			}
			var me *MigrationError
			if tc.wantFile != "" && (!errors.As(err, &me) || me.File != tc.wantFile) {
				t.Fatalf("error %v does not name file %s", err, tc.wantFile)
			}
		})
	}
}

func TestCheckHistory(t *testing.T) {
	steps := []migration{{version: 1, file: "0001_a.cql", checksum: "c1"}, {version: 2, file: "0002_b.cql", checksum: "c2"}}
	tests := []struct {
		name     string
		recorded map[int]AppliedMigration
		want     error
		wantFile string
	}{
		{"nothing applied", map[int]AppliedMigration{}, nil, ""},
		{"prefix applied", map[int]AppliedMigration{1: {Version: 1, Checksum: "c1"}}, nil, ""},
		{"edited file", map[int]AppliedMigration{1: {Version: 1, Checksum: "old"}}, ErrChecksumMismatch, "0001_a.cql"},
		{"unknown version", map[int]AppliedMigration{3: {Version: 3, Name: "0003_c.cql"}}, ErrUnknownVersion, "0003_c.cql"},
		{"gap before applied version", map[int]AppliedMigration{2: {Version: 2, Checksum: "c2"}}, ErrOutOfOrder, "0001_a.cql"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHistory("s", steps, tc.recorded)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("checkHistory = %v, want %v", err, tc.want)
			}
			var me *MigrationError
			if tc.wantFile != "" && (!errors.As(err, &me) || me.File != tc.wantFile) {
				t.Fatalf("error %v does not name %s", err, tc.wantFile)
			}
		})
	}
}

func TestReplicationCQL(t *testing.T) {
	tests := []struct {
		r       Replication
		want    string
		wantErr bool
	}{
		{Replication{}, "{'class': 'SimpleStrategy', 'replication_factor': 1}", false},
		{Replication{Factor: 3}, "{'class': 'SimpleStrategy', 'replication_factor': 3}", false},
		{Replication{Factor: 3, DataCenters: map[string]int{"dc2": 2, "dc1": 3}},
			"{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}", false},
		{Replication{DataCenters: map[string]int{"it's": 1}}, "{'class': 'NetworkTopologyStrategy', 'it''s': 1}", false},
		{Replication{Factor: -1}, "", true},
		{Replication{DataCenters: map[string]int{"dc1": 0}}, "", true},
		{Replication{DataCenters: map[string]int{"": 1}}, "", true},
	}
	for _, tc := range tests {
		got, err := tc.r.cql()
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%+v.cql() = %q, %v; want %q (error %v)", tc.r, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMigrationErrorNamesFileAndStatement(t *testing.T) {
	err := error(&MigrationError{Set: "messaging", File: "0002_x.cql", Statement: 3, Err: errors.New("boom")})
	if got, want := err.Error(), `cassandra: migration set "messaging", file 0002_x.cql, statement 3: boom`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTableIDIsStablePerKeyspaceAndTable(t *testing.T) {
	first, again := tableID("a", "t"), tableID("a", "t")
	if first != again {
		t.Error("same names give different ids")
	}
	if tableID("a", "t") == tableID("b", "t") || tableID("a", "t") == tableID("a", "u") {
		t.Error("different names give the same id")
	}
}
