package database

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"
)

// openCachingSQLite opens a private in-memory SQLite database with one connection keeping up
// to capacity statements, and returns that connection and its wrapper (to read the cache).
func openCachingSQLite(t *testing.T, capacity int) (*sql.DB, *sql.Conn, *sqliteConn) {
	t.Helper()
	ctx := context.Background()
	connector, _, err := sqliteConnectorFor(":memory:", 5*time.Second, capacity)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var sc *sqliteConn
	if err := conn.Raw(func(dc any) error { sc = dc.(*sqliteConn); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (v INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 3; v++ {
		if _, err := conn.ExecContext(ctx, `INSERT INTO t (v) VALUES ($1)`, v); err != nil {
			t.Fatal(err)
		}
	}
	return db, conn, sc
}

func values(t *testing.T, rows *sql.Rows) []int {
	t.Helper()
	var got []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAStatementRunAgainOnAConnectionIsPreparedOnce(t *testing.T) {
	ctx := context.Background()
	_, conn, sc := openCachingSQLite(t, 16)
	// The CREATE and the INSERT, run three times.
	if s := sc.stmts.stats; s.prepared != 2 || s.reused != 2 {
		t.Fatalf("after the setup: %+v, want the INSERT prepared once and reused twice", s)
	}
	for _, above := range []int{0, 1, 2} {
		rows, err := conn.QueryContext(ctx, `SELECT v FROM t WHERE v > $1 ORDER BY v`, above)
		if err != nil {
			t.Fatal(err)
		}
		got := values(t, rows)
		_ = rows.Close()
		if want := []int{1, 2, 3}[above:]; !slices.Equal(got, want) {
			t.Fatalf("v > %d: %v, want %v", above, got, want)
		}
	}
	if s := sc.stmts.stats; s.prepared != 3 || s.reused != 4 || s.closed != 0 {
		t.Fatalf("after three runs of the query: %+v, want it prepared once and reused twice", s)
	}
}

func TestAStatementEvictedWhileItsRowsAreOpenIsClosedOnlyWhenTheyClose(t *testing.T) {
	ctx := context.Background()
	_, conn, sc := openCachingSQLite(t, 1)
	rows, err := conn.QueryContext(ctx, `SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	closedBefore := sc.stmts.stats.closed
	if !rows.Next() {
		t.Fatal("no first row")
	}
	// Another statement takes the only place: the query's is evicted, but its rows run on.
	if _, err := conn.ExecContext(ctx, `UPDATE t SET v = v WHERE v = $1`, 99); err != nil {
		t.Fatal(err)
	}
	if got := sc.stmts.stats.closed - closedBefore; got != 0 {
		t.Fatalf("%d statements closed while the evicted one's rows are open", got)
	}
	var first int
	if err := rows.Scan(&first); err != nil {
		t.Fatal(err)
	}
	if got := append([]int{first}, values(t, rows)...); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("rows of the evicted statement: %v, want [1 2 3]", got)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sc.stmts.stats.closed - closedBefore; got != 1 {
		t.Fatalf("%d statements closed once the rows closed, want the evicted one", got)
	}
}

func TestTheSameStatementRunWhileItsRowsAreOpenRunsUncached(t *testing.T) {
	ctx := context.Background()
	_, conn, sc := openCachingSQLite(t, 16)
	const q = `SELECT v FROM t WHERE v > $1 ORDER BY v`
	outer, err := conn.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []int
	for outer.Next() {
		var v int
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		inner, err := conn.QueryContext(ctx, q, v)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range values(t, inner) {
			pairs = append(pairs, v*10+w)
		}
		_ = inner.Close()
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []int{12, 13, 23}; !slices.Equal(pairs, want) {
		t.Fatalf("nested runs of one statement: %v, want %v", pairs, want)
	}
	if s := sc.stmts.stats; s.bypassed != 3 {
		t.Fatalf("%+v: want the three nested runs uncached", s)
	}
	reused := sc.stmts.stats.reused
	rows, err := conn.QueryContext(ctx, q, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(t, rows); !slices.Equal(got, []int{3}) {
		t.Fatalf("after the nesting: %v, want [3]", got)
	}
	_ = rows.Close()
	if sc.stmts.stats.reused != reused+1 || sc.stmts.stats.prepared != 3 {
		t.Fatalf("%+v: want the statement kept and reused once its rows closed", sc.stmts.stats)
	}
}

func TestClosingAConnectionClosesTheStatementsItKept(t *testing.T) {
	ctx := context.Background()
	db, conn, sc := openCachingSQLite(t, 16)
	for _, q := range []string{`SELECT COUNT(*) FROM t`, `SELECT MAX(v) FROM t`} {
		var n int
		if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	kept := sc.stmts.stats.prepared
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if s := sc.stmts.stats; s.closed != kept || sc.stmts.lru.Len() != 0 {
		t.Fatalf("after the connection closed: %+v, %d kept; want all %d closed", s, sc.stmts.lru.Len(), kept)
	}
}

func TestAKeptStatementSeesTheSchemaAsItIsNow(t *testing.T) {
	ctx := context.Background()
	_, conn, _ := openCachingSQLite(t, 16)
	columns := func() []string {
		rows, err := conn.QueryContext(ctx, `SELECT * FROM t LIMIT 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rows.Close() }()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := columns(); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("columns %v", got)
	}
	if _, err := conn.ExecContext(ctx, `ALTER TABLE t ADD COLUMN w TEXT`); err != nil {
		t.Fatal(err)
	}
	if got := columns(); !slices.Equal(got, []string{"v", "w"}) {
		t.Fatalf("columns after ALTER TABLE: %v, want [v w]", got)
	}
}

func TestAStatementThatFailsToPrepareIsNotKeptAndFailsAsBefore(t *testing.T) {
	ctx := context.Background()
	_, conn, sc := openCachingSQLite(t, 16)
	prepared := sc.stmts.stats.prepared
	for range 2 {
		_, err := conn.ExecContext(ctx, `SELEC v FROM t`)
		if err == nil || !strings.Contains(err.Error(), "syntax error") {
			t.Fatalf("err = %v, want a syntax error", err)
		}
	}
	if sc.stmts.stats.prepared != prepared {
		t.Fatalf("%+v: a failed statement was kept", sc.stmts.stats)
	}
}

func TestOnlySingleStatementsOfBoundedLengthAreKept(t *testing.T) {
	for q, want := range map[string]bool{
		`SELECT v FROM t WHERE v = $1`:                    true,
		"SELECT 1;\n  ":                                   true,
		"CREATE TABLE a (x INT);\nCREATE TABLE b (y INT)": false,
		"SELECT 1; -- and a comment":                      false,
		"   ":                                             false,
		"SELECT '" + strings.Repeat("x", maxCachedStatementText) + "'": false,
	} {
		if got := cacheable(q); got != want {
			t.Errorf("cacheable(%.40q) = %v, want %v", q, got, want)
		}
	}
}

func TestAConnectionWithoutACacheKeepsNothing(t *testing.T) {
	ctx := context.Background()
	_, conn, sc := openCachingSQLite(t, -1)
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if s := sc.stmts.stats; s != (stmtCacheStats{}) || sc.stmts.lru.Len() != 0 {
		t.Fatalf("%+v: a cache of no statements kept some", s)
	}
}
