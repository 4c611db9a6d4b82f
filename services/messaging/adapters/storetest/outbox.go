// Package storetest holds the contract suite of messaging-service's store (app.Store), run
// against SQLite in the unit tier and a fresh Cassandra keyspace in the integration tier, and
// the test doubles the SQLite side needs: an outbox that records events through the caller's
// transaction, and helpers opening a migrated store.
package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/adapters"
)

// outboxMigrations is the table the test outbox writes to.
var outboxMigrations = database.MigrationSet{Name: "storetest_outbox", FS: fstest.MapFS{
	"0001_create.sql": {Data: []byte(`CREATE TABLE storetest_outbox (
		seq      BIGINT NOT NULL,
		topic    TEXT   NOT NULL,
		envelope TEXT   NOT NULL
	)`)},
}}

// Outbox is an adapters.EventOutbox for tests. It inserts every envelope into a table through
// the transaction it is given, so Events shows exactly the events whose transaction committed:
// an event recorded by a rolled-back change is gone with it, as with the real outbox.
type Outbox struct {
	db *database.DB

	mu    sync.Mutex
	seq   int64
	fail  error
	kicks int
}

// NewOutbox returns an outbox writing to db (creating its table).
func NewOutbox(t testing.TB, db *database.DB) *Outbox {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, outboxMigrations); err != nil {
		t.Fatalf("storetest: migrate outbox table: %v", err)
	}
	return &Outbox{db: db}
}

// FailWith makes every later Add fail with err (nil: succeed again).
func (o *Outbox) FailWith(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

// Add implements adapters.EventOutbox.
func (o *Outbox) Add(ctx context.Context, tx *sql.Tx, topic string, envs ...events.Envelope) error {
	o.mu.Lock()
	fail := o.fail
	o.mu.Unlock()
	if fail != nil {
		return fail
	}
	for _, env := range envs {
		if err := env.Validate(); err != nil {
			return err
		}
		body, err := json.Marshal(env)
		if err != nil {
			return err
		}
		o.mu.Lock()
		o.seq++
		seq := o.seq
		o.mu.Unlock()
		if _, err := tx.ExecContext(ctx, `INSERT INTO storetest_outbox (seq, topic, envelope) VALUES ($1, $2, $3)`, seq, topic, string(body)); err != nil {
			return err
		}
	}
	return nil
}

// Kick implements adapters.EventOutbox by counting the kicks.
func (o *Outbox) Kick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kicks++
}

// Kicks returns how many times Kick was called.
func (o *Outbox) Kicks() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.kicks
}

// Events returns the committed events in the order they were added, each with its topic.
func (o *Outbox) Events(t testing.TB) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := o.db.SQL().QueryContext(ctx, `SELECT topic, envelope FROM storetest_outbox ORDER BY seq`)
	if err != nil {
		t.Fatalf("storetest: read outbox: %v", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e    Event
			body string
		)
		if err := rows.Scan(&e.Topic, &body); err != nil {
			t.Fatalf("storetest: read outbox: %v", err)
		}
		if err := json.Unmarshal([]byte(body), &e.Envelope); err != nil {
			t.Fatalf("storetest: decode outbox envelope: %v", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("storetest: read outbox: %v", err)
	}
	return out
}

// OpenSQLStore applies the store's migrations to db and returns a store on it with a test
// outbox.
func OpenSQLStore(t testing.TB, db *database.DB) (*adapters.SQLStore, *Outbox) {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, adapters.Migrations); err != nil {
		t.Fatalf("storetest: migrate messaging store: %v", err)
	}
	ob := NewOutbox(t, db)
	return adapters.NewSQLStore(db, ob), ob
}

// OpenSQLite opens a migrated store on a new SQLite file of t (closed when t ends).
func OpenSQLite(t *testing.T) (*adapters.SQLStore, *Outbox, *database.DB) {
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
