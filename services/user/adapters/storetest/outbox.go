// Package storetest holds the contract suite of user-service's store, run against SQLite in
// the unit tier and a fresh PostgreSQL database in the integration tier, and a helper
// opening a migrated store with a test outbox (platform/events/outbox/outboxtest).
package storetest

import (
	"context"
	"testing"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events/outbox/outboxtest"
	"github.com/piazza-social/piazza/services/user/adapters"
)

// OpenStore applies the store's migrations to db and returns a store on it with a test outbox.
func OpenStore(t testing.TB, db *database.DB) (*adapters.Store, *outboxtest.Outbox) {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, adapters.Migrations); err != nil {
		t.Fatalf("storetest: migrate user store: %v", err)
	}
	ob := outboxtest.New(t, db)
	return adapters.NewStore(db, ob), ob
}

// OpenSQLiteStore opens a migrated store on a new SQLite file of t (closed when t ends).
func OpenSQLiteStore(t *testing.T) (*adapters.Store, *outboxtest.Outbox, *database.DB) {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	st, ob := OpenStore(t, db)
	return st, ob, db
}
