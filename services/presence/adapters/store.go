// Package adapters holds presence-service's adapters: the SQL store of the session history,
// one code path for PostgreSQL and SQLite on platform/database, with its embedded migration
// set "presence".
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/presence/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the store: the sessions table. Apply it with database.Migrate
// before using a Store.
var Migrations = database.MigrationSet{Name: "presence", FS: migrationFiles, Dir: "migrations"}

// Store keeps the session history in a relational database. Every write is an idempotent
// upsert whose result does not depend on the order of the writes (see domain.Session), so
// event redelivery and reordering need no deduplication table. It is safe for concurrent use.
type Store struct {
	db *database.DB
}

// NewStore returns a store on db, which must have Migrations applied.
func NewStore(db *database.DB) *Store { return &Store{db: db} }

// RecordConnected merges a connect of s (its ids and ConnectedAt) into the history: it
// creates the session, or, if a disconnect arrived first, moves its start back to
// s.ConnectedAt. A repeated connect changes nothing.
func (s *Store) RecordConnected(ctx context.Context, ses domain.Session) error {
	_, err := s.db.SQL().ExecContext(ctx, `INSERT INTO sessions (connection_id, user_id, instance_id, connected_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (connection_id) DO UPDATE SET
			user_id = excluded.user_id,
			instance_id = excluded.instance_id,
			connected_at = CASE WHEN excluded.connected_at < sessions.connected_at
				THEN excluded.connected_at ELSE sessions.connected_at END`,
		ses.ConnectionID, ses.UserID, ses.InstanceID, ses.ConnectedAt)
	if err != nil {
		return fmt.Errorf("presence store: record connect of %s: %w", ses.ConnectionID, err)
	}
	return nil
}

// RecordDisconnected merges a disconnect of s (its ids and DisconnectedAt) into the history:
// it closes the session at s.DisconnectedAt, replacing an estimated end; if the connect has
// not arrived yet, it creates the session with the disconnect as its provisional start. A
// repeated disconnect changes nothing.
func (s *Store) RecordDisconnected(ctx context.Context, ses domain.Session) error {
	_, err := s.db.SQL().ExecContext(ctx, `INSERT INTO sessions (connection_id, user_id, instance_id, connected_at, disconnected_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (connection_id) DO UPDATE SET disconnected_at = excluded.disconnected_at`,
		ses.ConnectionID, ses.UserID, ses.InstanceID, ses.DisconnectedAt)
	if err != nil {
		return fmt.Errorf("presence store: record disconnect of %s: %w", ses.ConnectionID, err)
	}
	return nil
}

const sessionColumns = `connection_id, user_id, instance_id, connected_at, disconnected_at`

type scanner interface{ Scan(dest ...any) error }

func scanSession(row scanner) (domain.Session, error) {
	var (
		ses domain.Session
		end sql.NullTime
	)
	if err := row.Scan(&ses.ConnectionID, &ses.UserID, &ses.InstanceID, &ses.ConnectedAt, &end); err != nil {
		return domain.Session{}, err
	}
	if end.Valid {
		ses.DisconnectedAt = end.Time
	}
	return ses, nil
}

func querySessions(ctx context.Context, db *sql.DB, query string, args ...any) ([]domain.Session, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Session
	for rows.Next() {
		ses, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ses)
	}
	return out, rows.Err()
}

// ListSessions returns up to limit sessions of userID strictly after the cursor, newest first
// by (connected_at, connection_id).
func (s *Store) ListSessions(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.SessionPage, error) {
	var (
		list []domain.Session
		err  error
	)
	// One row more than asked tells whether another page follows.
	if after.IsZero() {
		list, err = querySessions(ctx, s.db.SQL(), `SELECT `+sessionColumns+` FROM sessions WHERE user_id = $1
			ORDER BY connected_at DESC, connection_id DESC LIMIT $2`, userID, limit+1)
	} else {
		list, err = querySessions(ctx, s.db.SQL(), `SELECT `+sessionColumns+` FROM sessions WHERE user_id = $1
			AND (connected_at < $2 OR (connected_at = $2 AND connection_id < $3))
			ORDER BY connected_at DESC, connection_id DESC LIMIT $4`, userID, after.ConnectedAt, after.ConnectionID, limit+1)
	}
	if err != nil {
		return domain.SessionPage{}, fmt.Errorf("presence store: list sessions of %s: %w", userID, err)
	}
	page := domain.SessionPage{Sessions: list}
	if len(list) > limit {
		page.Sessions = list[:limit]
		last := page.Sessions[limit-1]
		page.Next = domain.Cursor{ConnectedAt: last.ConnectedAt, ConnectionID: last.ConnectionID}
	}
	return page, nil
}

// Activity returns the latest disconnect of userID's sessions and the latest start of those
// still open.
func (s *Store) Activity(ctx context.Context, userID string) (domain.Activity, error) {
	var a domain.Activity
	// Two indexed single-row reads rather than MAX(): an aggregate loses the column's type on
	// SQLite, so it would not scan into a time.
	err := s.db.SQL().QueryRowContext(ctx, `SELECT disconnected_at FROM sessions
		WHERE user_id = $1 AND disconnected_at IS NOT NULL ORDER BY disconnected_at DESC LIMIT 1`, userID).
		Scan(&a.LastDisconnectedAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return domain.Activity{}, fmt.Errorf("presence store: last disconnect of %s: %w", userID, err)
	}
	err = s.db.SQL().QueryRowContext(ctx, `SELECT connected_at FROM sessions
		WHERE user_id = $1 AND disconnected_at IS NULL ORDER BY connected_at DESC LIMIT 1`, userID).
		Scan(&a.LatestOpenConnectedAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return domain.Activity{}, fmt.Errorf("presence store: latest open session of %s: %w", userID, err)
	}
	return a, nil
}

// OpenSessions returns up to limit open sessions that started at or before startedBy, with
// connection ids above afterID, ordered by connection id: the sweeper pages through them.
func (s *Store) OpenSessions(ctx context.Context, startedBy time.Time, afterID string, limit int) ([]domain.Session, error) {
	list, err := querySessions(ctx, s.db.SQL(), `SELECT `+sessionColumns+` FROM sessions
		WHERE disconnected_at IS NULL AND connection_id > $1 AND connected_at <= $2
		ORDER BY connection_id LIMIT $3`, afterID, startedBy, limit)
	if err != nil {
		return nil, fmt.Errorf("presence store: open sessions: %w", err)
	}
	return list, nil
}

// CloseSessions ends each listed session that is still open at its given time, in one
// transaction, and returns how many it closed. A session closed meanwhile (its disconnect
// arrived) keeps its recorded end.
func (s *Store) CloseSessions(ctx context.Context, ends []domain.End) (int64, error) {
	if len(ends) == 0 {
		return 0, nil
	}
	var closed int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		closed = 0
		for _, e := range ends {
			res, err := tx.ExecContext(ctx, `UPDATE sessions SET disconnected_at = $1
				WHERE connection_id = $2 AND disconnected_at IS NULL`, e.At, e.ConnectionID)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			closed += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("presence store: close %d sessions: %w", len(ends), err)
	}
	return closed, nil
}

// PurgeEnded deletes up to limit sessions that ended before cutoff and returns how many.
func (s *Store) PurgeEnded(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := s.db.SQL().ExecContext(ctx, `DELETE FROM sessions WHERE connection_id IN (
		SELECT connection_id FROM sessions WHERE disconnected_at < $1 LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("presence store: purge sessions ended before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("presence store: purge: %w", err)
	}
	return n, nil
}
