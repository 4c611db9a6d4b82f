// Package adapters holds notification-service's adapters: the SQL store of the durable inbox
// (one code path for PostgreSQL and SQLite, on platform/database, with its embedded migration
// set "notification").
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/notification/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the store: inbox_counters, notification_events and
// inbox_entries. Apply it with
// database.Migrate before using a Store.
var Migrations = database.MigrationSet{Name: "notification", FS: migrationFiles, Dir: "migrations"}

// deliverAttempts is how many times Deliver runs its transaction when it loses a race that a
// fresh attempt wins (see Deliver).
const deliverAttempts = 4

// Store keeps the inboxes in a relational database. It is safe for concurrent use, from any
// number of processes sharing the database.
type Store struct {
	db *database.DB
}

// NewStore returns a store on db, which must have Migrations applied.
func NewStore(db *database.DB) *Store { return &Store{db: db} }

// Deliver stores d in the inbox of each of userIDs (repeats ignored, at most domain.MaxDeliveryBatch
// distinct users) in one transaction, and returns, for every one of them, its notification of
// d's event — the one stored now, or the one an earlier delivery of the same event stored —
// sorted by user id, with how many of them are new.
//
// The event (type, data, time) is stored once, in notification_events; each recipient gets
// an inbox entry (event id, user id, seq). When the event was stored by an earlier delivery
// (a redelivery, or the next batch of a fan-out), that copy is kept: every notification of an
// event says the same, and the ones returned carry it.
//
// Each new notification takes the next sequence number of its user. Users who already have a
// notification of d.EventID are filtered out before any number is allocated, so a redelivered
// event stores nothing and burns no number; and since a number is allocated in the transaction
// that stores its notification, a failed delivery burns none either. The filter is skipped
// when this transaction is the one that stores the event: nobody can have an entry of it yet.
//
// Concurrency: the counter rows are locked in user-id order (an upsert of the sorted ids), so
// concurrent deliveries to one user are serialized — each sees the other's number — and
// deliveries to overlapping sets of users cannot deadlock. Two concurrent deliveries of the
// same event meet at the event's row: the second waits for the first to end and then sees its
// entries (on PostgreSQL; should it still break the unique (event_id, user_id), it rolls back
// and Deliver runs it again). On SQLite write transactions are serialized anyway.
func (s *Store) Deliver(ctx context.Context, d domain.Draft, userIDs []string) ([]domain.Notification, int, error) {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > 0 && ids[0] == "" {
		return nil, 0, fmt.Errorf("notification store: deliver %s: empty user id", d.EventID)
	}
	if len(ids) > domain.MaxDeliveryBatch {
		return nil, 0, fmt.Errorf("notification store: deliver %s: %d recipients exceed the batch limit %d", d.EventID, len(ids), domain.MaxDeliveryBatch)
	}
	if len(ids) == 0 {
		return nil, 0, nil
	}
	d.CreatedAt = d.CreatedAt.UTC().Truncate(time.Microsecond)
	for attempt := 1; ; attempt++ {
		out, fresh, err := s.deliverOnce(ctx, d, ids)
		if err == nil {
			return out, fresh, nil
		}
		if attempt == deliverAttempts || ctx.Err() != nil || !(database.IsUniqueViolation(err) || database.IsRetryable(err)) {
			return nil, 0, fmt.Errorf("notification store: deliver %s: %w", d.EventID, err)
		}
	}
}

func (s *Store) deliverOnce(ctx context.Context, d domain.Draft, ids []string) ([]domain.Notification, int, error) {
	var out []domain.Notification
	fresh := 0
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		out, fresh = out[:0], 0
		res, err := tx.ExecContext(ctx, `INSERT INTO notification_events (event_id, type, data, occurred_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING`, d.EventID, d.Type, string(d.Data), d.CreatedAt)
		if err != nil {
			return err
		}
		stored, err := res.RowsAffected()
		if err != nil {
			return err
		}
		todo := ids
		if stored == 0 {
			// Stored before: keep that copy, and skip the users who have their entry.
			if d, err = storedEvent(ctx, tx, d.EventID); err != nil {
				return err
			}
			existing, err := s.delivered(ctx, tx, d, ids)
			if err != nil {
				return err
			}
			todo = make([]string, 0, len(ids))
			for _, id := range ids {
				if n, ok := existing[id]; ok {
					out = append(out, n)
				} else {
					todo = append(todo, id)
				}
			}
		}
		if len(todo) == 0 {
			return nil
		}
		seqs, err := s.allocate(ctx, tx, d.EventID, todo)
		if err != nil {
			return err
		}
		for _, id := range todo {
			out = append(out, domain.Notification{
				UserID: id, Seq: seqs[id], EventID: d.EventID, Type: d.Type, Data: d.Data, CreatedAt: d.CreatedAt,
			})
		}
		fresh = len(todo)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(out, func(a, b domain.Notification) int { return strings.Compare(a.UserID, b.UserID) })
	return out, fresh, nil
}

// storedEvent reads the stored draft of eventID.
func storedEvent(ctx context.Context, tx *sql.Tx, eventID string) (domain.Draft, error) {
	d := domain.Draft{EventID: eventID}
	var data string
	err := tx.QueryRowContext(ctx, `SELECT type, data, occurred_at FROM notification_events WHERE event_id = $1`, eventID).
		Scan(&d.Type, &data, &d.CreatedAt)
	d.Data = json.RawMessage(data)
	return d, err
}

// delivered returns the notifications of d's event that users among ids already have.
func (s *Store) delivered(ctx context.Context, tx *sql.Tx, d domain.Draft, ids []string) (map[string]domain.Notification, error) {
	list, err := jsonIDs(ids)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT i.user_id, i.seq, COALESCE(c.read_seq, 0)
		FROM inbox_entries i LEFT JOIN inbox_counters c ON c.user_id = i.user_id
		WHERE i.event_id = $1 AND i.user_id IN (`+s.idList(2)+`)`, d.EventID, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]domain.Notification{}
	for rows.Next() {
		n := domain.Notification{EventID: d.EventID, Type: d.Type, Data: d.Data, CreatedAt: d.CreatedAt}
		var readSeq int64
		if err := rows.Scan(&n.UserID, &n.Seq, &readSeq); err != nil {
			return nil, err
		}
		n.Read = n.Seq <= readSeq
		out[n.UserID] = n
	}
	return out, rows.Err()
}

// idList returns a subquery of the user ids in parameter p, a JSON array of strings: one
// parameter and one statement text whatever the batch size, where a list of placeholders
// would make the engine parse (and the driver bind) a new statement of up to thousands of
// parameters per batch.
func (s *Store) idList(p int) string {
	if s.db.Dialect() == database.Postgres {
		return `SELECT value FROM json_array_elements_text($` + strconv.Itoa(p) + `::json)`
	}
	return `SELECT value FROM json_each($` + strconv.Itoa(p) + `)`
}

func jsonIDs(ids []string) (string, error) {
	b, err := json.Marshal(ids)
	return string(b), err
}

// allocate takes the next sequence number of each of ids (sorted, distinct), creating the
// counters of first-time recipients, and locks their counter rows until the transaction ends;
// then stores the inbox entries of eventID for them with those numbers, and returns the
// numbers.
func (s *Store) allocate(ctx context.Context, tx *sql.Tx, eventID string, ids []string) (map[string]int64, error) {
	list, err := jsonIDs(ids)
	if err != nil {
		return nil, err
	}
	// ORDER BY: the counter rows are locked in one order by every delivery (no deadlock).
	// WHERE true: SQLite's parser needs a WHERE before an upsert's ON CONFLICT.
	if _, err := tx.ExecContext(ctx, `INSERT INTO inbox_counters (user_id, last_seq, read_seq)
		SELECT value, 1, 0 FROM (`+s.idList(1)+`) ids WHERE true ORDER BY value
		ON CONFLICT (user_id) DO UPDATE SET last_seq = inbox_counters.last_seq + 1`, list); err != nil {
		return nil, err
	}
	// The counters hold the numbers just taken, locked by this transaction.
	rows, err := tx.QueryContext(ctx, `INSERT INTO inbox_entries (event_id, user_id, seq)
		SELECT $1, c.user_id, c.last_seq FROM inbox_counters c WHERE c.user_id IN (`+s.idList(2)+`)
		RETURNING user_id, seq`, eventID, list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seqs := make(map[string]int64, len(ids))
	for rows.Next() {
		var (
			id  string
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		seqs[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(seqs) != len(ids) {
		return nil, fmt.Errorf("allocated %d sequence numbers for %d users", len(seqs), len(ids))
	}
	return seqs, nil
}

// notificationColumns are read with scanNotification; they need inbox_entries AS i,
// notification_events AS e and inbox_counters AS c (LEFT JOIN) in the query.
const notificationColumns = `i.seq, i.event_id, e.type, e.data, e.occurred_at, COALESCE(c.read_seq, 0)`

type scanner interface{ Scan(dest ...any) error }

func scanNotification(row scanner) (domain.Notification, error) {
	var (
		n       domain.Notification
		data    string
		readSeq int64
	)
	if err := row.Scan(&n.Seq, &n.EventID, &n.Type, &data, &n.CreatedAt, &readSeq); err != nil {
		return domain.Notification{}, err
	}
	n.Data = json.RawMessage(data)
	n.Read = n.Seq <= readSeq
	return n, nil
}

func (s *Store) list(ctx context.Context, userID, order string, args ...any) ([]domain.Notification, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+notificationColumns+`
		FROM inbox_entries i JOIN notification_events e ON e.event_id = i.event_id
		LEFT JOIN inbox_counters c ON c.user_id = i.user_id
		WHERE i.user_id = $1 AND `+order+` LIMIT $3`, append([]any{userID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		n.UserID = userID
		out = append(out, n)
	}
	return out, rows.Err()
}

// List returns a page of userID's inbox, newest first: the notifications below the cursor, at
// most limit of them. Each page is one range scan of the primary key.
func (s *Store) List(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.Page, error) {
	// One more row than asked tells whether a next page exists.
	items, err := s.list(ctx, userID, `i.seq < $2 ORDER BY i.seq DESC`, after.Bound(), limit+1)
	if err != nil {
		return domain.Page{}, fmt.Errorf("notification store: list: %w", err)
	}
	page := domain.Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = domain.Cursor{Before: items[limit-1].Seq}
	}
	return page, nil
}

// Since returns userID's notifications with a sequence number above afterSeq, oldest first, at
// most limit of them, and whether more follow.
func (s *Store) Since(ctx context.Context, userID string, afterSeq int64, limit int) (domain.Since, error) {
	items, err := s.list(ctx, userID, `i.seq > $2 ORDER BY i.seq`, afterSeq, limit+1)
	if err != nil {
		return domain.Since{}, fmt.Errorf("notification store: list since: %w", err)
	}
	if len(items) > limit {
		return domain.Since{Items: items[:limit], HasMore: true}, nil
	}
	return domain.Since{Items: items}, nil
}

// Unread counts userID's notifications above the read marker and reports the newest sequence
// number; both zero for a user who never had a notification. One statement, so one snapshot.
func (s *Store) Unread(ctx context.Context, userID string) (domain.Unread, error) {
	var u domain.Unread
	err := s.db.SQL().QueryRowContext(ctx, `SELECT c.last_seq,
		(SELECT count(*) FROM inbox_entries i WHERE i.user_id = c.user_id AND i.seq > c.read_seq)
		FROM inbox_counters c WHERE c.user_id = $1`, userID).Scan(&u.LastSeq, &u.Count)
	switch {
	case database.IsNoRows(err):
		return domain.Unread{}, nil
	case err != nil:
		return domain.Unread{}, fmt.Errorf("notification store: unread count: %w", err)
	}
	return u, nil
}

// MarkRead moves userID's read marker up to upTo, clamped to the newest sequence number, and
// returns the marker as it is afterwards. The marker never moves backwards: a lower upTo
// changes nothing. A user without notifications has marker 0 and keeps it.
func (s *Store) MarkRead(ctx context.Context, userID string, upTo int64) (int64, error) {
	var marker int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE inbox_counters
			SET read_seq = CASE WHEN last_seq < $2 THEN last_seq ELSE $2 END
			WHERE user_id = $1 AND read_seq < $2`, userID, upTo); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT read_seq FROM inbox_counters WHERE user_id = $1`, userID).Scan(&marker)
		if database.IsNoRows(err) {
			marker = 0
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("notification store: mark read: %w", err)
	}
	return marker, nil
}
