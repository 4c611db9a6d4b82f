package databasetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piazza-social/piazza/platform/database"
)

// RunContract runs the platform/database contract. open(t) must return a new handle, with a
// pool of its own, on the database of test t: the first call for a given t on a fresh, empty
// database, later calls with the same t on that same database (see Opener).
func RunContract(t *testing.T, open func(t *testing.T) *database.DB) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) *database.DB)
	}{
		{"OpenAndPing", testOpenAndPing},
		{"MigrateAppliesInOrderAndSecondRunIsNoOp", testMigrateTwice},
		{"MigrationStatusListsPendingFiles", testStatus},
		{"ConcurrentMigratorsApplyEachStepOnce", testConcurrentMigrators},
		{"BrokenMigrationNamesFileAndKeepsRecordedVersion", testBrokenMigration},
		{"ChangedAppliedMigrationIsDetected", testChangedChecksum},
		{"UnknownAppliedVersionIsDetected", testUnknownVersion},
		{"LateLowerVersionIsRefused", testOutOfOrder},
		{"SeveralSetsLiveSideBySide", testSeveralSets},
		{"EngineVariantFilesWinOverGeneric", testVariants},
		{"TransactionCommitsOrRollsBack", testTransactions},
		{"ConcurrentReadThenWriteTransactionsAllSucceed", testConcurrentWriters},
		{"ConstraintViolationsAreClassified", testConstraintErrors},
		{"ErrNoRowsPassesThrough", testNoRows},
		{"DollarParametersBindByNumber", testDollarParameters},
		{"TimesRoundTripInUTCWithMicroseconds", testTimes},
		{"NullsRoundTrip", testNulls},
		{"LargeTextAndBytesRoundTrip", testLargeValues},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// files builds a migration set from name → content pairs.
func files(name string, kv ...string) database.MigrationSet {
	fsys := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return database.MigrationSet{Name: name, FS: fsys}
}

func migrate(t *testing.T, db *database.DB, set database.MigrationSet) int {
	t.Helper()
	n, err := database.Migrate(ctxFor(t), db, set)
	if err != nil {
		t.Fatalf("migrate %s: %v", set.Name, err)
	}
	return n
}

func exec(t *testing.T, db *database.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL().ExecContext(ctxFor(t), q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func count(t *testing.T, db *database.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(ctxFor(t), q, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return n
}

// tableExists probes a table by selecting from it; the probe runs in a rolled-back
// transaction because a failed statement aborts a PostgreSQL transaction.
func tableExists(t *testing.T, db *database.DB, table string) bool {
	t.Helper()
	ctx := ctxFor(t)
	tx, err := db.SQL().BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, "SELECT 1 FROM "+table+" WHERE 1 = 0")
	return err == nil
}

func testOpenAndPing(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	if err := db.Ping(ctxFor(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if d := db.Dialect(); d != database.Postgres && d != database.SQLite {
		t.Fatalf("dialect = %q", d)
	}
}

const createAccounts = `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);`

var accountsSet = files("accounts",
	"0001_create_accounts.sql", createAccounts,
	"0002_seed.sql", `INSERT INTO accounts (id, balance) VALUES ('root', 0);
-- a comment between statements
INSERT INTO accounts (id, balance) VALUES ('bank', 100);`,
	"0003_index.sql", `CREATE INDEX accounts_balance ON accounts (balance);`,
	"README.md", `ignored: not a migration`,
)

func testMigrateTwice(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	if n := migrate(t, db, accountsSet); n != 3 {
		t.Fatalf("first migrate applied %d steps, want 3", n)
	}
	if n := migrate(t, db, accountsSet); n != 0 {
		t.Fatalf("second migrate applied %d steps, want 0", n)
	}
	if n := count(t, db, `SELECT count(*) FROM accounts`); n != 2 {
		t.Fatalf("accounts has %d rows, want 2 (multi-statement step ran once, fully)", n)
	}
	st, err := database.Status(ctxFor(t), db, accountsSet)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Current != 3 || st.Latest != 3 || !st.UpToDate() || len(st.Applied) != 3 {
		t.Fatalf("status = %+v, want current 3, latest 3, nothing pending", st)
	}
	if st.Applied[1].Name != "0002_seed.sql" || len(st.Applied[1].Checksum) != 64 || st.Applied[1].AppliedAt.IsZero() {
		t.Fatalf("applied[1] = %+v", st.Applied[1])
	}
}

func testStatus(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	st, err := database.Status(ctxFor(t), db, accountsSet)
	if err != nil {
		t.Fatalf("status before any migration: %v", err)
	}
	want := []string{"0001_create_accounts.sql", "0002_seed.sql", "0003_index.sql"}
	if st.Current != 0 || strings.Join(st.Pending, ",") != strings.Join(want, ",") {
		t.Fatalf("status = %+v, want current 0, pending %v", st, want)
	}
	first := files("accounts", "0001_create_accounts.sql", createAccounts)
	migrate(t, db, first)
	st, err = database.Status(ctxFor(t), db, accountsSet)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Current != 1 || strings.Join(st.Pending, ",") != strings.Join(want[1:], ",") {
		t.Fatalf("status = %+v, want current 1, pending %v", st, want[1:])
	}
}

func testConcurrentMigrators(t *testing.T, open func(t *testing.T) *database.DB) {
	const migrators = 3
	handles := make([]*database.DB, migrators)
	for i := range handles {
		handles[i] = open(t)
	}
	// Several rounds, each a new set, so that the migrators really overlap at some step.
	for round := range 5 {
		set := files(fmt.Sprintf("race%d", round),
			"0001_create.sql", fmt.Sprintf(`CREATE TABLE race%d (n BIGINT NOT NULL);`, round),
			"0002_insert.sql", fmt.Sprintf(`INSERT INTO race%d (n) VALUES (1);`, round),
			"0003_insert_again.sql", fmt.Sprintf(`INSERT INTO race%d (n) VALUES (2);`, round),
			"0004_create_more.sql", fmt.Sprintf(`CREATE TABLE race%d_more (n BIGINT);`, round),
		)
		var (
			start   = make(chan struct{})
			wg      sync.WaitGroup
			applied = make([]int, migrators)
			errs    = make([]error, migrators)
		)
		for i, db := range handles {
			wg.Go(func() {
				<-start
				applied[i], errs[i] = database.Migrate(ctxFor(t), db, set)
			})
		}
		close(start)
		wg.Wait()
		total := 0
		for i := range handles {
			if errs[i] != nil {
				t.Fatalf("round %d: migrator %d: %v", round, i, errs[i])
			}
			total += applied[i]
		}
		if total != 4 {
			t.Fatalf("round %d: migrators applied %v steps in total, want 4", round, applied)
		}
		db := handles[0]
		if n := count(t, db, fmt.Sprintf(`SELECT count(*) FROM race%d`, round)); n != 2 {
			t.Fatalf("round %d: %d rows inserted, want 2 (each INSERT step once)", round, n)
		}
		if n := count(t, db, `SELECT count(*) FROM schema_migrations WHERE set_name = $1`, set.Name); n != 4 {
			t.Fatalf("round %d: %d schema_migrations rows, want 4", round, n)
		}
	}
}

func testBrokenMigration(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	set := files("broken",
		"0001_good.sql", `CREATE TABLE good (id BIGINT);`,
		"0002_bad.sql", `CREATE TABLE half_done (id BIGINT);
INSERT INTO no_such_table (id) VALUES (1);`,
		"0003_later.sql", `CREATE TABLE later (id BIGINT);`,
	)
	n, err := database.Migrate(ctxFor(t), db, set)
	if err == nil {
		t.Fatal("migrate with a broken step succeeded")
	}
	if n != 1 {
		t.Errorf("applied = %d, want 1 (the step before the broken one)", n)
	}
	var me *database.MigrationError
	if !errors.As(err, &me) || me.File != "0002_bad.sql" || me.Set != "broken" {
		t.Fatalf("error %v (%T) does not name set broken, file 0002_bad.sql", err, err)
	}
	if !strings.Contains(err.Error(), "0002_bad.sql") || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("error %q does not name the file and the SQL error", err)
	}
	st, err := database.Status(ctxFor(t), db, set)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Current != 1 || len(st.Pending) != 2 {
		t.Fatalf("status = %+v, want current 1 and two pending", st)
	}
	if tableExists(t, db, "half_done") {
		t.Error("the broken step's first statement was not rolled back")
	}
	if tableExists(t, db, "later") {
		t.Error("a step after the broken one was applied")
	}
	if !tableExists(t, db, "good") {
		t.Error("the step before the broken one was lost")
	}
}

func testChangedChecksum(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	migrate(t, db, files("drift", "0001_t.sql", `CREATE TABLE drift (id BIGINT);`))
	changed := files("drift",
		"0001_t.sql", `CREATE TABLE drift (id BIGINT, extra TEXT);`,
		"0002_more.sql", `CREATE TABLE drift_more (id BIGINT);`,
	)
	n, err := database.Migrate(ctxFor(t), db, changed)
	if !errors.Is(err, database.ErrChecksumMismatch) || !strings.Contains(err.Error(), "0001_t.sql") {
		t.Fatalf("migrate with an edited applied file: %v, want ErrChecksumMismatch naming 0001_t.sql", err)
	}
	if n != 0 || tableExists(t, db, "drift_more") {
		t.Fatal("a step was applied although the history is inconsistent")
	}
	if _, err := database.Status(ctxFor(t), db, changed); !errors.Is(err, database.ErrChecksumMismatch) {
		t.Fatalf("status with an edited applied file: %v, want ErrChecksumMismatch", err)
	}
}

func testUnknownVersion(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	migrate(t, db, files("ahead",
		"0001_a.sql", `CREATE TABLE ahead_a (id BIGINT);`,
		"0002_b.sql", `CREATE TABLE ahead_b (id BIGINT);`,
	))
	_, err := database.Migrate(ctxFor(t), db, files("ahead", "0001_a.sql", `CREATE TABLE ahead_a (id BIGINT);`))
	if !errors.Is(err, database.ErrUnknownVersion) {
		t.Fatalf("migrate an older set against a newer database: %v, want ErrUnknownVersion", err)
	}
}

func testOutOfOrder(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	migrate(t, db, files("gap",
		"0001_a.sql", `CREATE TABLE gap_a (id BIGINT);`,
		"0003_c.sql", `CREATE TABLE gap_c (id BIGINT);`,
	))
	// 0002 appears after 0003 was applied: refused rather than applied out of order.
	n, err := database.Migrate(ctxFor(t), db, files("gap",
		"0001_a.sql", `CREATE TABLE gap_a (id BIGINT);`,
		"0002_b.sql", `CREATE TABLE gap_b (id BIGINT);`,
		"0003_c.sql", `CREATE TABLE gap_c (id BIGINT);`,
	))
	if !errors.Is(err, database.ErrOutOfOrder) || !strings.Contains(err.Error(), "0002_b.sql") || n != 0 {
		t.Fatalf("migrate with a late lower version: applied %d, %v; want ErrOutOfOrder naming 0002_b.sql", n, err)
	}
}

func testSeveralSets(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	a := files("a", "0001_t.sql", `CREATE TABLE set_a (id BIGINT);`)
	b := files("b",
		"0001_t.sql", `CREATE TABLE set_b (id BIGINT);`,
		"0002_u.sql", `CREATE TABLE set_b2 (id BIGINT);`,
	)
	if n := migrate(t, db, a); n != 1 {
		t.Fatalf("set a applied %d, want 1", n)
	}
	if n := migrate(t, db, b); n != 2 {
		t.Fatalf("set b applied %d, want 2 (version 1 of set a must not count for b)", n)
	}
	for _, tc := range []struct {
		set  database.MigrationSet
		want int
	}{{a, 1}, {b, 2}} {
		st, err := database.Status(ctxFor(t), db, tc.set)
		if err != nil {
			t.Fatalf("status %s: %v", tc.set.Name, err)
		}
		if st.Current != tc.want || !st.UpToDate() {
			t.Fatalf("status %s = %+v, want current %d", tc.set.Name, st, tc.want)
		}
	}
}

func testVariants(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	set := files("variants",
		"0001_items.postgres.sql", `CREATE TABLE items (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label TEXT NOT NULL);`,
		"0001_items.sqlite.sql", `CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL);`,
		"0001_items.sql", `this generic file is shadowed by both variants and would not parse;`,
		"0002_seed.sql", `INSERT INTO items (label) VALUES ('a'); INSERT INTO items (label) VALUES ('b');`,
	)
	migrate(t, db, set)
	var maxID int64
	if err := db.SQL().QueryRowContext(ctxFor(t), `SELECT max(id) FROM items`).Scan(&maxID); err != nil || maxID != 2 {
		t.Fatalf("max(id) = %d, %v; want 2 from the engine's identity column", maxID, err)
	}
	st, err := database.Status(ctxFor(t), db, set)
	if err != nil {
		t.Fatal(err)
	}
	if want := "0001_items." + string(db.Dialect()) + ".sql"; st.Applied[0].Name != want {
		t.Fatalf("recorded %q, want %q", st.Applied[0].Name, want)
	}
	_, err = database.Migrate(ctxFor(t), db, files("lopsided", "0001_x.nosuchengine.sql", `SELECT 1;`))
	if err != nil {
		t.Fatalf("a file with an unknown suffix must be ignored, got %v", err)
	}
	other := database.SQLite
	if db.Dialect() == database.SQLite {
		other = database.Postgres
	}
	_, err = database.Migrate(ctxFor(t), db, files("lopsided2", "0001_x."+string(other)+".sql", `SELECT 1;`))
	if err == nil {
		t.Fatal("a version with only another engine's variant must be an error")
	}
}

func testTransactions(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE tx_rows (id TEXT PRIMARY KEY)`)
	ctx := ctxFor(t)

	if err := db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tx_rows (id) VALUES ($1)`, "committed")
		return err
	}); err != nil {
		t.Fatalf("InTx: %v", err)
	}
	boom := errors.New("boom")
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tx_rows (id) VALUES ($1)`, "rolled-back"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the function's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "panic" {
				t.Errorf("recovered %v, want the function's panic", r)
			}
		}()
		_ = db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tx_rows (id) VALUES ($1)`, "panicked"); err != nil {
				return err
			}
			panic("panic")
		})
	}()
	rows, err := db.SQL().QueryContext(ctx, `SELECT id FROM tx_rows ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "committed" {
		t.Fatalf("rows = %v, want only the committed one", got)
	}
	// The pool is still usable after the panic: the rolled-back transaction released its
	// connection (and, on SQLite, the write turn).
	exec(t, db, `INSERT INTO tx_rows (id) VALUES ('after')`)
}

func testConcurrentWriters(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	other := open(t) // a second pool on the same database, as another process would have
	exec(t, db, `CREATE TABLE counters (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`)
	exec(t, db, `INSERT INTO counters (id, n) VALUES ('c', 0)`)
	exec(t, db, `CREATE TABLE appended (w BIGINT NOT NULL, i BIGINT NOT NULL)`)
	const workers, each = 8, 15
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := range workers {
		pool := db
		if w%2 == 1 {
			pool = other
		}
		wg.Go(func() {
			for range each {
				// Read, then write: on SQLite a deferred transaction doing this fails with
				// SQLITE_BUSY under concurrency; the package must make it wait instead.
				errs <- pool.InTx(ctx, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT n FROM counters WHERE id = 'c'`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx, `UPDATE counters SET n = n + 1 WHERE id = 'c'`)
					return err
				})
				// A write outside a transaction, run as a query.
				var got int
				err := pool.SQL().QueryRowContext(ctx, `INSERT INTO appended (w, i) VALUES ($1, $2) RETURNING w`, w, 0).Scan(&got)
				if err == nil && got != w {
					err = fmt.Errorf("RETURNING gave %d, want %d", got, w)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent transaction failed: %v", err)
		}
	}
	if n := count(t, db, `SELECT n FROM counters WHERE id = 'c'`); n != workers*each {
		t.Fatalf("counter = %d, want %d", n, workers*each)
	}
	if n := count(t, db, `SELECT count(*) FROM appended`); n != workers*each {
		t.Fatalf("appended %d rows, want %d", n, workers*each)
	}
}

func testConstraintErrors(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE parents (id TEXT PRIMARY KEY, email TEXT UNIQUE)`)
	exec(t, db, `CREATE TABLE children (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parents (id))`)
	exec(t, db, `INSERT INTO parents (id, email) VALUES ('p1', 'a@example.com')`)
	ctx := ctxFor(t)
	insert := func(q string, args ...any) error {
		_, err := db.SQL().ExecContext(ctx, q, args...)
		return err
	}

	pk := insert(`INSERT INTO parents (id, email) VALUES ($1, $2)`, "p1", "b@example.com")
	uniq := insert(`INSERT INTO parents (id, email) VALUES ($1, $2)`, "p2", "a@example.com")
	fk := insert(`INSERT INTO children (id, parent_id) VALUES ($1, $2)`, "c1", "missing")
	notNull := insert(`INSERT INTO children (id, parent_id) VALUES ($1, $2)`, "c2", nil)
	syntax := insert(`INSERT INTO nowhere VALUES (1)`)

	for _, tc := range []struct {
		name               string
		err                error
		unique, fkey, null bool
	}{
		{"primary key", pk, true, false, false},
		{"unique column", uniq, true, false, false},
		{"foreign key", fk, false, true, false},
		{"not null", notNull, false, false, true},
		{"missing table", syntax, false, false, false},
	} {
		if tc.err == nil {
			t.Errorf("%s: statement succeeded, want an error", tc.name)
			continue
		}
		wrapped := fmt.Errorf("store: %w", tc.err)
		if got := database.IsUniqueViolation(wrapped); got != tc.unique {
			t.Errorf("%s: IsUniqueViolation(%v) = %v", tc.name, tc.err, got)
		}
		if got := database.IsForeignKeyViolation(wrapped); got != tc.fkey {
			t.Errorf("%s: IsForeignKeyViolation(%v) = %v", tc.name, tc.err, got)
		}
		if got := database.IsNotNullViolation(wrapped); got != tc.null {
			t.Errorf("%s: IsNotNullViolation(%v) = %v", tc.name, tc.err, got)
		}
	}
}

func testNoRows(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE empty_table (id TEXT)`)
	var id string
	err := db.SQL().QueryRowContext(ctxFor(t), `SELECT id FROM empty_table WHERE id = $1`, "x").Scan(&id)
	if !errors.Is(err, database.ErrNoRows) || !database.IsNoRows(fmt.Errorf("wrapped: %w", err)) {
		t.Fatalf("scan of no rows = %v, want ErrNoRows", err)
	}
}

func testDollarParameters(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE pairs (a TEXT, b TEXT, n BIGINT)`)
	// $2 before $1: binding must follow the numbers, not the order of appearance.
	exec(t, db, `INSERT INTO pairs (a, b, n) VALUES ($2, $1, $3)`, "second", "first", 7)
	var a, b string
	var n int
	err := db.SQL().QueryRowContext(ctxFor(t),
		// $1 twice and $2 once, with $2 appearing first.
		`SELECT a, b, n FROM pairs WHERE n = $2 AND (a = $1 OR b = $1)`, "first", 7).Scan(&a, &b, &n)
	if err != nil {
		t.Fatalf("select with repeated $1: %v", err)
	}
	if a != "first" || b != "second" || n != 7 {
		t.Fatalf("got (%q, %q, %d), want (first, second, 7)", a, b, n)
	}
}

func testTimes(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE moments (id BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL)`)
	east := time.FixedZone("UTC+5", 5*3600)
	moments := []time.Time{
		time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),               // whole second
		time.Date(2024, 3, 1, 12, 0, 0, 500_000_000, time.UTC),     // short fraction
		time.Date(2024, 3, 1, 12, 0, 0, 123_456_789, time.UTC),     // below microseconds
		time.Date(2024, 3, 1, 17, 0, 1, 0, east),                   // another zone, one second later
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_000, time.UTC), // earlier
		time.Now(), // monotonic reading, local zone
	}
	ctx := ctxFor(t)
	for i, m := range moments {
		exec(t, db, `INSERT INTO moments (id, at) VALUES ($1, $2)`, i, m)
	}
	for i, m := range moments {
		var got time.Time
		if err := db.SQL().QueryRowContext(ctx, `SELECT at FROM moments WHERE id = $1`, i).Scan(&got); err != nil {
			t.Fatalf("read moment %d: %v", i, err)
		}
		want := m.UTC().Truncate(time.Microsecond)
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("moment %d: wrote %v, read %v (%v), want %v in UTC", i, m, got, got.Location(), want)
		}
	}
	// Comparison and ordering follow time, across zones and fraction lengths.
	rows, err := db.SQL().QueryContext(ctx, `SELECT id FROM moments WHERE at >= $1 ORDER BY at`, moments[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var order []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		order = append(order, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(order); got != "[0 2 1 3 5]" {
		t.Errorf("ids ordered by time = %s, want [0 2 1 3 5]", got)
	}
	// An aggregate over a time column scans as a time too.
	var latest time.Time
	if err := db.SQL().QueryRowContext(ctx, `SELECT max(at) FROM moments WHERE id < 5`).Scan(&latest); err != nil {
		t.Fatalf("max(at): %v", err)
	}
	if want := moments[3].UTC(); !latest.Equal(want) {
		t.Errorf("max(at) = %v, want %v", latest, want)
	}
}

func testNulls(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE maybe (id BIGINT PRIMARY KEY, s TEXT, n BIGINT, at TIMESTAMPTZ, b BYTEA, flag BOOLEAN)`)
	var nilString *string
	exec(t, db, `INSERT INTO maybe (id, s, n, at, b, flag) VALUES ($1, $2, $3, $4, $5, $6)`,
		1, nilString, sql.NullInt64{}, sql.NullTime{}, []byte(nil), sql.NullBool{})
	at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	exec(t, db, `INSERT INTO maybe (id, s, n, at, b, flag) VALUES ($1, $2, $3, $4, $5, $6)`,
		2, "x", 0, at, []byte{}, false)

	var (
		s    sql.NullString
		n    sql.NullInt64
		ts   sql.NullTime
		b    []byte
		flag sql.NullBool
		sp   *string
	)
	ctx := ctxFor(t)
	if err := db.SQL().QueryRowContext(ctx, `SELECT s, n, at, b, flag, s FROM maybe WHERE id = 1`).Scan(&s, &n, &ts, &b, &flag, &sp); err != nil {
		t.Fatalf("scan NULLs: %v", err)
	}
	if s.Valid || n.Valid || ts.Valid || b != nil || flag.Valid || sp != nil {
		t.Fatalf("NULLs read back as %v %v %v %v %v %v", s, n, ts, b, flag, sp)
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT s, n, at, b, flag, s FROM maybe WHERE id = 2`).Scan(&s, &n, &ts, &b, &flag, &sp); err != nil {
		t.Fatalf("scan values: %v", err)
	}
	if !s.Valid || s.String != "x" || !n.Valid || n.Int64 != 0 || !ts.Valid || !ts.Time.Equal(at) || b == nil || len(b) != 0 ||
		!flag.Valid || flag.Bool || sp == nil || *sp != "x" {
		t.Fatalf("zero values read back as %v %v %v %v %v %v", s, n, ts, b, flag, sp)
	}
	if got := count(t, db, `SELECT count(*) FROM maybe WHERE s IS NULL AND at IS NULL`); got != 1 {
		t.Fatalf("IS NULL matched %d rows, want 1", got)
	}
}

func testLargeValues(t *testing.T, open func(t *testing.T) *database.DB) {
	db := open(t)
	exec(t, db, `CREATE TABLE blobs (id BIGINT PRIMARY KEY, body TEXT NOT NULL, data BYTEA NOT NULL)`)
	body := strings.Repeat("piazza ünïcode ✓ ", 1<<18) // ~5 MiB of UTF-8
	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	data[0], data[len(data)-1] = 0, 0 // NUL bytes must survive
	exec(t, db, `INSERT INTO blobs (id, body, data) VALUES ($1, $2, $3)`, 1, body, data)
	var gotBody string
	var gotData []byte
	if err := db.SQL().QueryRowContext(ctxFor(t), `SELECT body, data FROM blobs WHERE id = $1`, 1).Scan(&gotBody, &gotData); err != nil {
		t.Fatalf("read large values: %v", err)
	}
	if gotBody != body {
		t.Errorf("text of %d bytes came back as %d bytes, different", len(body), len(gotBody))
	}
	if !bytes.Equal(gotData, data) {
		t.Errorf("bytes of %d came back as %d, different", len(data), len(gotData))
	}
}
