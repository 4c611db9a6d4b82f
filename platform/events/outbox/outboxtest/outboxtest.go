// Package outboxtest holds a test double of the transactional outbox: it records the events a
// service adds through the caller's own transaction, so a test sees exactly the events whose
// change committed (an event added by a rolled-back change is gone with it, as with the real
// outbox), and it can be told to fail.
package outboxtest

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
)

// outboxMigrations is the table the test outbox writes to.
var outboxMigrations = database.MigrationSet{Name: "storetest_outbox", FS: fstest.MapFS{
	"0001_create.sql": {Data: []byte(`CREATE TABLE storetest_outbox (
		seq      BIGINT NOT NULL,
		topic    TEXT   NOT NULL,
		envelope TEXT   NOT NULL
	)`)},
}}

// Outbox is a service outbox for tests (it has the Add and Kick of platform/events/outbox). It inserts every envelope into a table through
// the transaction it is given, so Events shows exactly the events whose transaction committed:
// an event recorded by a rolled-back change is gone with it, as with the real outbox.
type Outbox struct {
	db *database.DB

	mu    sync.Mutex
	seq   int64
	fail  error
	kicks int
}

// New returns an outbox writing to db (creating its table).
func New(t testing.TB, db *database.DB) *Outbox {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, outboxMigrations); err != nil {
		t.Fatalf("outboxtest: migrate outbox table: %v", err)
	}
	return &Outbox{db: db}
}

// FailWith makes every later Add fail with err (nil: succeed again).
func (o *Outbox) FailWith(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

// Add records envs in tx: they are visible to Events once tx commits.
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

// Kick counts the kicks (a service calls it after committing).
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

// Event is one committed outbox entry.
type Event struct {
	Topic    string
	Envelope events.Envelope
}

// Events returns the committed events in the order they were added.
func (o *Outbox) Events(t testing.TB) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := o.db.SQL().QueryContext(ctx, `SELECT topic, envelope FROM storetest_outbox ORDER BY seq`)
	if err != nil {
		t.Fatalf("outboxtest: read outbox: %v", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e    Event
			body string
		)
		if err := rows.Scan(&e.Topic, &body); err != nil {
			t.Fatalf("outboxtest: read outbox: %v", err)
		}
		if err := json.Unmarshal([]byte(body), &e.Envelope); err != nil {
			t.Fatalf("outboxtest: decode outbox envelope: %v", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("outboxtest: read outbox: %v", err)
	}
	return out
}
