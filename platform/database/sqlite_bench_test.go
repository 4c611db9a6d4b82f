package database_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/piazza-social/piazza/platform/database"
)

// BenchmarkSQLiteQuery runs a point query by primary key and a page of a range, with every
// connection keeping its prepared statements (the default) and with none kept, so that the
// parse and plan a kept statement saves shows next to what the query itself costs.
//
//	go test -run '^$' -bench SQLiteQuery ./platform/database/
func BenchmarkSQLiteQuery(b *testing.B) {
	for _, mode := range []struct {
		name       string
		statements int
	}{{"kept", 0}, {"parsed-every-run", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := database.Open(ctx, database.Config{
				URL:              "sqlite:" + filepath.Join(b.TempDir(), "bench.db"),
				SQLiteStatements: mode.statements,
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE items (
				id INTEGER PRIMARY KEY, owner TEXT NOT NULL, body TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.SQL().ExecContext(ctx, `CREATE INDEX items_owner ON items (owner, created_at DESC, id DESC)`); err != nil {
				b.Fatal(err)
			}
			if _, err := db.SQL().ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
				INSERT INTO items SELECT i, 'owner-' || (i % 20), 'body of ' || i, datetime('now', '-' || i || ' seconds') FROM n`); err != nil {
				b.Fatal(err)
			}
			b.Run("point", func(b *testing.B) {
				var owner, body string
				for i := 0; b.Loop(); i++ {
					if err := db.SQL().QueryRowContext(ctx,
						`SELECT owner, body FROM items WHERE id = $1`, i%2000+1).Scan(&owner, &body); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("page", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					rows, err := db.SQL().QueryContext(ctx, `SELECT id, body, created_at FROM items
						WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT 20`, "owner-"+strconv.Itoa(i%20))
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for rows.Next() {
						n++
					}
					if n != 20 {
						b.Fatalf("a page of %d rows, want 20", n)
					}
					if err := rows.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
