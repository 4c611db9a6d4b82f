package database_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
)

func TestSQLiteFileMeetsTheContract(t *testing.T) {
	databasetest.RunContract(t, databasetest.Opener(databasetest.SQLiteURL))
}

func TestOpenRejectsUnknownSchemes(t *testing.T) {
	for _, url := range []string{"mysql://localhost/x", "no-scheme", "sqlite:", "sqlite:/tmp/a?b.db"} {
		if db, err := database.Open(context.Background(), database.Config{URL: url}, nil); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded, want an error", url)
		}
	}
}

func TestSQLiteFileIsConfiguredForConcurrencyAndIntegrity(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	ctx := context.Background()
	// Every pooled connection must carry the settings, not just the first one: hold several.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for pragma, want := range map[string]string{
			"journal_mode": "wal", "foreign_keys": "1", "synchronous": "1", "busy_timeout": "5000", "temp_store": "2",
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, pragma, err)
			}
			if strings.ToLower(got) != want {
				t.Errorf("conn %d: PRAGMA %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
	if db.Dialect() != database.SQLite {
		t.Errorf("dialect = %s", db.Dialect())
	}
}

func TestSQLiteURLWithSlashesAndMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "x.db")
	db := databasetest.Open(t, "sqlite://"+path)
	if _, err := db.SQL().Exec(`CREATE TABLE t (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	reopened := databasetest.Open(t, "sqlite:"+path)
	var n int
	if err := reopened.SQL().QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatalf("the file was not kept at %s: %v", path, err)
	}
}

func TestSQLiteMemoryIsSharedByThePoolAndPrivateToTheDB(t *testing.T) {
	a := databasetest.Open(t, "sqlite::memory:")
	b := databasetest.Open(t, "sqlite::memory:")
	ctx := context.Background()
	if _, err := a.SQL().ExecContext(ctx, `CREATE TABLE t (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	// Two connections of the pool see the same database.
	c1, err := a.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := a.SQL().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c1.ExecContext(ctx, `INSERT INTO t (id) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c2.QueryRowContext(ctx, `SELECT id FROM t`).Scan(&got); err != nil || got != "x" {
		t.Fatalf("second connection read %q, %v; want the row of the first", got, err)
	}
	var n int
	if err := b.SQL().QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 't'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("another in-memory DB sees the table: n=%d err=%v", n, err)
	}
}

func TestWriteThroughThePoolInsideATransactionFailsInsteadOfHanging(t *testing.T) {
	ctx := context.Background()
	db, err := database.Open(ctx, database.Config{URL: databasetest.SQLiteURL(t), BusyTimeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE t (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := db.SQL().ExecContext(ctx, `INSERT INTO t (id) VALUES ('x')`)
		return err
	})
	if !errors.Is(err, database.ErrWriteLockTimeout) || !database.IsRetryable(err) {
		t.Fatalf("nested write = %v, want ErrWriteLockTimeout", err)
	}
}
