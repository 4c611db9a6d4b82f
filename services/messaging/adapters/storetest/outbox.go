// Package storetest holds the contract suite of messaging-service's store (app.Store), run
// against SQLite in the unit tier and a fresh Cassandra keyspace in the integration tier, and
// helpers opening a migrated SQLite store with a test outbox (platform/events/outbox/outboxtest).
package storetest

import (
	"context"
	"testing"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/messaging/adapters"
)

// OpenSQLStore applies the store's migrations to db and returns a store on it with a test
// outbox.
func OpenSQLStore(t testing.TB, db *database.DB) (*adapters.SQLStore, *outboxtest.Outbox) {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, adapters.Migrations); err != nil {
		t.Fatalf("storetest: migrate messaging store: %v", err)
	}
	ob := outboxtest.New(t, db)
	return adapters.NewSQLStore(db, ob), ob
}

// OpenSQLite opens a migrated store on a new SQLite file of t (closed when t ends).
func OpenSQLite(t *testing.T) (*adapters.SQLStore, *outboxtest.Outbox, *database.DB) {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	st, ob := OpenSQLStore(t, db)
	return st, ob, db
}

// SQLiteHarness is the contract's harness on a fresh SQLite store of t.
func SQLiteHarness(t *testing.T) Harness {
	t.Helper()
	st, ob, _ := OpenSQLite(t)
	return Harness{Store: st, Events: ob.Events}
}
