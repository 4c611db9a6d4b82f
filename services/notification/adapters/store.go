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

// Migrations is the schema of the store: inbox_counters and notifications. Apply it with
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
// Each new notification takes the next sequence number of its user. Users who already have a
// notification of d.EventID are filtered out before any number is allocated, so a redelivered
// event stores nothing and burns no number; and since a number is allocated in the transaction
// that stores its notification, a failed delivery burns none either.
//
// Concurrency: the counter rows are locked in user-id order (an upsert of the sorted ids), so
// concurrent deliveries to one user are serialized — each sees the other's number — and
// deliveries to overlapping sets of users cannot deadlock. Two concurrent deliveries of the
// same event both pass the filter; the second then breaks the unique (user_id, event_id) and
// rolls back, and Deliver runs it again, when the filter sees the first one's rows. On SQLite
// write transactions are serialized anyway.
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
		existing, err := delivered(ctx, tx, d.EventID, ids)
		if err != nil {
			return err
		}
		todo := make([]string, 0, len(ids))
		for _, id := range ids {
			if n, ok := existing[id]; ok {
				out = append(out, n)
			} else {
				todo = append(todo, id)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		seqs, err := allocate(ctx, tx, todo)
		if err != nil {
			return err
		}
		if err := insert(ctx, tx, d, todo, seqs); err != nil {
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

// placeholders returns "$first, $first+1, …" for n parameters.
func placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(first+i))
	}
	return b.String()
}

// delivered returns the notifications of eventID that users among ids already have.
func delivered(ctx context.Context, tx *sql.Tx, eventID string, ids []string) (map[string]domain.Notification, error) {
	args := make([]any, 0, len(ids)+1)
	args = append(args, eventID)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := tx.QueryContext(ctx, `SELECT n.user_id, `+notificationColumns+`
		FROM notifications n LEFT JOIN inbox_counters c ON c.user_id = n.user_id
		WHERE n.event_id = $1 AND n.user_id IN (`+placeholders(2, len(ids))+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]domain.Notification{}
	for rows.Next() {
		var userID string
		n, err := scanNotification(rows, &userID)
		if err != nil {
			return nil, err
		}
		n.UserID = userID
		out[userID] = n
	}
	return out, rows.Err()
}

// allocate takes the next sequence number of each of ids (sorted, distinct), creating the
// counters of first-time recipients, and locks their counter rows until the transaction ends.
func allocate(ctx context.Context, tx *sql.Tx, ids []string) (map[string]int64, error) {
	var values strings.Builder
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString("($" + strconv.Itoa(i+1) + ", 1, 0)")
		args[i] = id
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO inbox_counters (user_id, last_seq, read_seq) VALUES `+values.String()+`
		ON CONFLICT (user_id) DO UPDATE SET last_seq = inbox_counters.last_seq + 1
		RETURNING user_id, last_seq`, args...)
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

// insert stores d for each of ids with its sequence number; the shared values are bound once.
func insert(ctx context.Context, tx *sql.Tx, d domain.Draft, ids []string, seqs map[string]int64) error {
	var values strings.Builder
	args := make([]any, 0, 4+2*len(ids))
	args = append(args, d.EventID, d.Type, string(d.Data), d.CreatedAt)
	for i, id := range ids {
		if i > 0 {
			values.WriteString(", ")
		}
		p := 5 + 2*i
		values.WriteString("($" + strconv.Itoa(p) + ", $" + strconv.Itoa(p+1) + ", $1, $2, $3, $4)")
		args = append(args, id, seqs[id])
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO notifications (user_id, seq, event_id, type, data, created_at)
		VALUES `+values.String(), args...)
	return err
}

// notificationColumns are read with scanNotification; they need notifications AS n and
// inbox_counters AS c (LEFT JOIN) in the query.
const notificationColumns = `n.seq, n.event_id, n.type, n.data, n.created_at, COALESCE(c.read_seq, 0)`

type scanner interface{ Scan(dest ...any) error }

func scanNotification(row scanner, extra ...any) (domain.Notification, error) {
	var (
		n       domain.Notification
		data    string
		readSeq int64
	)
	if err := row.Scan(append(extra, &n.Seq, &n.EventID, &n.Type, &data, &n.CreatedAt, &readSeq)...); err != nil {
		return domain.Notification{}, err
	}
	n.Data = json.RawMessage(data)
	n.Read = n.Seq <= readSeq
	return n, nil
}

func (s *Store) list(ctx context.Context, userID, order string, args ...any) ([]domain.Notification, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+notificationColumns+`
		FROM notifications n LEFT JOIN inbox_counters c ON c.user_id = n.user_id
		WHERE n.user_id = $1 AND `+order+` LIMIT $3`, append([]any{userID}, args...)...)
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
	items, err := s.list(ctx, userID, `n.seq < $2 ORDER BY n.seq DESC`, after.Bound(), limit+1)
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
	items, err := s.list(ctx, userID, `n.seq > $2 ORDER BY n.seq`, afterSeq, limit+1)
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
		(SELECT count(*) FROM notifications n WHERE n.user_id = c.user_id AND n.seq > c.read_seq)
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
