// Package outbox is the transactional outbox: a service writes its state change and the events
// describing it in ONE database transaction, and a Forwarder publishes the events to the bus
// afterwards. So an event is published if and only if its change committed: a rolled-back
// transaction leaves no event behind, and a crash after the commit loses none.
//
// It is written by hand on platform/database rather than taken from watermill-sql's forwarder,
// because watermill-sql has no SQLite adapter and we want one mechanism, with the same tests,
// on both engines: PostgreSQL in distributed mode, SQLite in embedded mode.
//
// Usage in a service (the table comes from Migrations, applied next to the service's own set):
//
//	err := ob.InTx(ctx, func(tx *sql.Tx) error {
//		if err := repo.Follow(ctx, tx, follower, followee); err != nil { // state change first
//			return err
//		}
//		return ob.Add(ctx, tx, eventsv1.TopicUsers, env)
//	})
//
// and in the process wiring, one Forwarder per database, run under the lifecycle group.
//
// Waking the forwarder. A commit happens after Add returns, so Add cannot announce the event;
// Kick does, and Outbox.InTx calls it after a successful commit (a service that runs its own
// transactions calls Kick itself after committing). Kick wakes this process's Forwarder at
// once; without it, or when another replica holds the forwarding lock, the event goes out at
// the Forwarder's next poll (PollInterval, 1 s by default), which is the safety net.
//
// Guarantees:
//   - At least once: a row is deleted only after the bus accepted its message; a crash between
//     the two publishes it again. The message UUID is the event id, so consumers deduplicate
//     on it (platform/events/dedupe).
//   - Order: rows are published in id order, one batch after another, and a failed publish is
//     retried before anything newer goes out. Ids are assigned at insert time; on PostgreSQL
//     two concurrent transactions may commit out of id order, and the later-numbered one can
//     be published first. Events of one aggregate still keep their order when the transaction
//     changes the aggregate's row before calling Add: the row lock makes the second
//     transaction insert its event only after the first committed.
//   - Message UUID, metadata (events.PartitionKey included) and payload are published exactly
//     as Add stored them, except the trace context: the stored one is the request's, and the
//     message carries the Forwarder's producer span, a child of it (see Forwarder).
//   - One forwarder at a time per database on PostgreSQL (a session advisory lock); on SQLite,
//     run one Forwarder per database file (one process owns the file in embedded mode).
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the outbox table (outbox_messages) on PostgreSQL or SQLite; apply it with
// database.Migrate next to the service's own set.
var Migrations = database.MigrationSet{Name: "outbox", FS: migrationFiles, Dir: "migrations"}

// Config configures an Outbox.
type Config struct {
	// DB is the service's database, whose schema includes Migrations. Required.
	DB *database.DB
	// Propagator writes the trace context of Add's ctx into each message's metadata; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Outbox stores events inside the caller's transactions. It is safe for concurrent use.
type Outbox struct {
	db   *database.DB
	prop propagation.TextMapPropagator
	// wake holds at most one pending Kick for the Forwarder: kicks that arrive while one is
	// pending coalesce, and none is lost while the Forwarder is busy.
	wake chan struct{}
}

// New returns an Outbox over cfg.DB.
func New(cfg Config) (*Outbox, error) {
	if cfg.DB == nil {
		return nil, errors.New("outbox: Config.DB is required")
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return &Outbox{db: cfg.DB, prop: cfg.Propagator, wake: make(chan struct{}, 1)}, nil
}

// Add stores envs, in order, as messages for topic inside tx: they will be published if and
// only if tx commits. Each becomes the message events.NewMessage makes, so the trace context
// of ctx (the request that caused the event) travels with it. Add validates every envelope
// before storing any. Call Kick (or use InTx) once tx has committed.
func (o *Outbox) Add(ctx context.Context, tx *sql.Tx, topic string, envs ...events.Envelope) error {
	if tx == nil {
		return errors.New("outbox: Add needs a transaction")
	}
	if topic == "" {
		return errors.New("outbox: empty topic")
	}
	type row struct {
		uuid     string
		metadata string
		payload  []byte
	}
	rows := make([]row, len(envs))
	for i, env := range envs {
		msg, err := events.NewMessage(ctx, env, o.prop)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		md, err := json.Marshal(msg.Metadata)
		if err != nil {
			return fmt.Errorf("outbox: encode metadata of %s: %w", env.ID, err)
		}
		rows[i] = row{uuid: msg.UUID, metadata: string(md), payload: msg.Payload}
	}
	now := time.Now()
	// One statement per event rather than a multi-row INSERT: the ids, hence the publishing
	// order, then follow the order of envs on both engines without relying on how a VALUES
	// list is numbered.
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO outbox_messages (topic, message_uuid, metadata, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
			topic, r.uuid, r.metadata, r.payload, now); err != nil {
			return fmt.Errorf("outbox: store event %s for %s: %w", r.uuid, topic, err)
		}
	}
	return nil
}

// Kick tells this Outbox's Forwarder that events have committed, so that it forwards them now
// rather than at its next poll. It never blocks; kicks coalesce; a Kick without a running
// Forwarder is harmless.
func (o *Outbox) Kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// InTx runs fn in a transaction of the Outbox's database, like database.DB.InTx, and calls
// Kick after it committed. fn adds its events with Add(ctx, tx, ...).
func (o *Outbox) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := o.db.InTx(ctx, fn); err != nil {
		return err
	}
	o.Kick()
	return nil
}

// Pending reports how many events wait to be published (the backlog).
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := o.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM outbox_messages`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count pending events: %w", err)
	}
	return n, nil
}
