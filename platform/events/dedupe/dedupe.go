// Package dedupe makes event consumers idempotent. The bus delivers at least once, so a handler
// may see an event again (after a crash, a nack, a rebalance). The handler claims the event's
// id inside the same transaction as its effect: the claim and the effect commit together or
// not at all, so a redelivered event finds its claim and does nothing, and a failed handler
// leaves no claim behind and is retried in full.
//
// The claims live in the consumer's own database (table processed_events, migration set
// Migrations), on PostgreSQL or SQLite alike.
package dedupe

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/piazza-social/piazza/platform/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the claims table; apply it with database.Migrate next to the service's
// own set.
var Migrations = database.MigrationSet{Name: "dedupe", FS: migrationFiles, Dir: "migrations"}

// Config configures a Deduper.
type Config struct {
	// DB is the database holding the claims: the one the handlers' transactions run on.
	DB *database.DB
}

// Deduper records which events each consumer has processed.
type Deduper struct {
	db *database.DB
}

// New returns a Deduper over cfg.DB, whose schema must include Migrations.
func New(cfg Config) (*Deduper, error) {
	if cfg.DB == nil {
		return nil, errors.New("dedupe: config needs DB")
	}
	return &Deduper{db: cfg.DB}, nil
}

// Claim records, inside tx, that consumer processes eventID, and reports whether this is the
// first time: false means the event was processed before (a committed claim exists) and the
// caller should do nothing. The claim becomes permanent only if tx commits. If another
// transaction holds an uncommitted claim for the same event, Claim waits for it and then
// answers according to its outcome.
func (d *Deduper) Claim(ctx context.Context, tx *sql.Tx, consumer, eventID string) (first bool, err error) {
	if consumer == "" || eventID == "" {
		return false, errors.New("dedupe: consumer and event id must not be empty")
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO processed_events (consumer, event_id, claimed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		consumer, eventID, time.Now())
	if err != nil {
		return false, fmt.Errorf("dedupe: claim %s for %s: %w", eventID, consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("dedupe: claim %s for %s: %w", eventID, consumer, err)
	}
	return n == 1, nil
}

// Once runs fn in a transaction together with consumer's claim of eventID, unless the event was
// processed already; it reports whether fn ran (and committed). An error from fn rolls back
// both, leaving the event unclaimed for the retry.
func (d *Deduper) Once(ctx context.Context, consumer, eventID string, fn func(tx *sql.Tx) error) (ran bool, err error) {
	err = d.db.InTx(ctx, func(tx *sql.Tx) error {
		first, err := d.Claim(ctx, tx, consumer, eventID)
		if err != nil || !first {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		ran = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return ran, nil
}

// Prune deletes claims made more than olderThan ago and returns how many. Keep claims longer
// than any event can be redelivered (the bus's retention), or an old event would run again.
func (d *Deduper) Prune(ctx context.Context, olderThan time.Duration) (int64, error) {
	cutoff := time.Now().Add(-olderThan)
	var total int64
	for {
		// In slices, so that no single transaction holds locks for long.
		res, err := d.db.SQL().ExecContext(ctx, `DELETE FROM processed_events WHERE (consumer, event_id) IN (
			SELECT consumer, event_id FROM processed_events WHERE claimed_at < $1 LIMIT 5000)`, cutoff)
		if err != nil {
			return total, fmt.Errorf("dedupe: prune: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("dedupe: prune: %w", err)
		}
		total += n
		if n < 5000 {
			return total, nil
		}
	}
}
