// Package adapters holds the dead-letter archive's adapters: the SQL store of archived dead
// letters (one code path for PostgreSQL and SQLite, on platform/database, with its embedded
// migration set "deadletter") and the republisher that puts a replayed message back on the bus.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the store (table dead_letter_archive). Apply it with
// database.Migrate before using a Store.
var Migrations = database.MigrationSet{Name: "deadletter", FS: migrationFiles, Dir: "migrations"}

// Store keeps archived dead letters in a relational database. Every method is one statement,
// so the store is safe for concurrent use, by several processes too.
type Store struct {
	db *database.DB
}

// NewStore returns a store on db, which must have Migrations applied.
func NewStore(db *database.DB) *Store { return &Store{db: db} }

const entryColumns = `id, message_uuid, dedupe_key, original_topic, handler, reason, attempts,
	first_failed_at, last_failed_at, metadata, payload, archived_at, replayed_at, replay_count`

type scanner interface{ Scan(dest ...any) error }

func scanEntry(row scanner) (domain.Entry, error) {
	var (
		e                     domain.Entry
		first, last, replayed sql.NullTime
		metadata              []byte
	)
	err := row.Scan(&e.ID, &e.MessageID, &e.DedupeKey, &e.Topic, &e.Handler, &e.Reason, &e.Attempts,
		&first, &last, &metadata, &e.Payload, &e.ArchivedAt, &replayed, &e.ReplayCount)
	if err != nil {
		return domain.Entry{}, err
	}
	if err := json.Unmarshal(metadata, &e.Metadata); err != nil {
		return domain.Entry{}, fmt.Errorf("entry %s: metadata: %w", e.ID, err)
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.FirstFailedAt, e.LastFailedAt, e.ReplayedAt = first.Time, last.Time, replayed.Time
	return e, nil
}

// nullTime is a zero time as SQL NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Add stores e unless an entry with its DedupeKey exists, and reports whether it stored it.
func (s *Store) Add(ctx context.Context, e domain.Entry) (bool, error) {
	md, err := json.Marshal(e.Metadata)
	if err != nil {
		return false, fmt.Errorf("deadletter store: encode metadata of %s: %w", e.MessageID, err)
	}
	payload := e.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := s.db.SQL().ExecContext(ctx, `INSERT INTO dead_letter_archive
		(id, message_uuid, dedupe_key, original_topic, handler, reason, attempts,
		 first_failed_at, last_failed_at, metadata, payload, archived_at, replay_count)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)
		ON CONFLICT (dedupe_key) DO NOTHING`,
		e.ID, e.MessageID, e.DedupeKey, e.Topic, e.Handler, e.Reason, e.Attempts,
		nullTime(e.FirstFailedAt), nullTime(e.LastFailedAt), string(md), payload, e.ArchivedAt)
	if err != nil {
		return false, fmt.Errorf("deadletter store: add %s: %w", e.MessageID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("deadletter store: add %s: %w", e.MessageID, err)
	}
	return n == 1, nil
}

// Get returns the entry with id, or domain.ErrNotFound. id must be a UUID.
func (s *Store) Get(ctx context.Context, id string) (domain.Entry, error) {
	e, err := scanEntry(s.db.SQL().QueryRowContext(ctx,
		`SELECT `+entryColumns+` FROM dead_letter_archive WHERE id = $1`, id))
	switch {
	case database.IsNoRows(err):
		return domain.Entry{}, domain.ErrNotFound
	case err != nil:
		return domain.Entry{}, fmt.Errorf("deadletter store: get %s: %w", id, err)
	}
	return e, nil
}

// List returns the entries f selects, newest (highest id) first. f.Before, when set, must be a
// UUID.
func (s *Store) List(ctx context.Context, f domain.Filter) ([]domain.Entry, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Topic != "" {
		add("original_topic = $%d", f.Topic)
	}
	if f.Before != "" {
		add("id < $%d", f.Before)
	}
	if f.Pending {
		where = append(where, "replayed_at IS NULL")
	}
	q := `SELECT ` + entryColumns + ` FROM dead_letter_archive`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	return s.query(ctx, "list", q, args...)
}

// Pending returns up to limit entries never replayed, oldest first, with after < id <= through
// (after empty: from the oldest), of topic (empty: every topic). after and through must be
// UUIDs when set; through must be set.
func (s *Store) Pending(ctx context.Context, topic, after, through string, limit int) ([]domain.Entry, error) {
	q := `SELECT ` + entryColumns + ` FROM dead_letter_archive
		WHERE replayed_at IS NULL AND id <= $1 AND ($2 = '' OR original_topic = $2)`
	args := []any{through, topic}
	if after != "" {
		q += ` AND id > $4`
		args = append(args, limit, after)
	} else {
		args = append(args, limit)
	}
	q += ` ORDER BY id LIMIT $3`
	return s.query(ctx, "pending", q, args...)
}

func (s *Store) query(ctx context.Context, what, q string, args ...any) ([]domain.Entry, error) {
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("deadletter store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []domain.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("deadletter store: %s: %w", what, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deadletter store: %s: %w", what, err)
	}
	return out, nil
}

// MarkReplayed records a replay of the entry id at at and returns the entry as it is now, or
// domain.ErrNotFound.
func (s *Store) MarkReplayed(ctx context.Context, id string, at time.Time) (domain.Entry, error) {
	e, err := scanEntry(s.db.SQL().QueryRowContext(ctx, `UPDATE dead_letter_archive
		SET replayed_at = $2, replay_count = replay_count + 1
		WHERE id = $1 RETURNING `+entryColumns, id, at))
	switch {
	case database.IsNoRows(err):
		return domain.Entry{}, domain.ErrNotFound
	case err != nil:
		return domain.Entry{}, fmt.Errorf("deadletter store: mark %s replayed: %w", id, err)
	}
	return e, nil
}

// Delete removes the entry id, or returns domain.ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	res, err := s.db.SQL().ExecContext(ctx, `DELETE FROM dead_letter_archive WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("deadletter store: delete %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deadletter store: delete %s: %w", id, err)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	return nil
}

// DeleteArchivedBefore removes up to limit entries archived before cutoff, oldest first, and
// returns their ids. Callers loop until it returns fewer than limit, so that no statement
// holds its locks for long.
func (s *Store) DeleteArchivedBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `DELETE FROM dead_letter_archive WHERE id IN (
			SELECT id FROM dead_letter_archive WHERE archived_at < $1 ORDER BY id LIMIT $2)
		RETURNING id`, cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("deadletter store: purge: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("deadletter store: purge: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deadletter store: purge: %w", err)
	}
	return ids, nil
}

// Depth returns, per original topic of the archive, how many entries were never replayed
// (topics whose entries were all replayed are present with 0).
func (s *Store) Depth(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT original_topic,
			SUM(CASE WHEN replayed_at IS NULL THEN 1 ELSE 0 END)
		FROM dead_letter_archive GROUP BY original_topic`)
	if err != nil {
		return nil, fmt.Errorf("deadletter store: depth: %w", err)
	}
	defer rows.Close()
	depth := map[string]int64{}
	for rows.Next() {
		var (
			topic string
			n     int64
		)
		if err := rows.Scan(&topic, &n); err != nil {
			return nil, fmt.Errorf("deadletter store: depth: %w", err)
		}
		depth[topic] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deadletter store: depth: %w", err)
	}
	return depth, nil
}
