// Package adapters holds messaging-service's two stores behind app.Store, which pass one
// contract suite (storetest):
//
//   - SQLStore keeps conversations and messages in SQLite (embedded mode) on
//     platform/database, with its migration set "messaging", and writes its events through the
//     platform's transactional outbox in the same transactions;
//   - CassandraStore keeps them in Cassandra (distributed mode), with its CQL migration set
//     "messaging" (CassandraMigrations), modelled query by query, and writes its events to a
//     pending-events table in the same logged batch as the message; CassandraForwarder
//     publishes them.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of SQLStore (migration set "messaging", SQLite). Apply it with
// database.Migrate before using the store. The outbox the store writes its events through has
// its own migrations (outbox.Migrations), applied to the same database.
var Migrations = database.MigrationSet{Name: "messaging", FS: migrationFiles, Dir: "migrations"}

// EventOutbox records events in the caller's transaction, to be published after it commits.
// platform/events/outbox's *Outbox satisfies it.
type EventOutbox interface {
	// Add stores envs for topic inside tx; they are published if and only if tx commits.
	Add(ctx context.Context, tx *sql.Tx, topic string, envs ...events.Envelope) error
	// Kick tells the forwarder that events have committed, so it publishes them now rather
	// than at its next poll. It must not block.
	Kick()
}

// SQLStore keeps messaging-service's state in SQLite. Every message is stored together with
// its event (through the outbox, on topic eventsv1.TopicMessages) in one transaction; the
// outbox is kicked after the commit. Uniqueness (one conversation per pair, one message per
// sender, conversation and client message id) rests on the schema's keys, and SQLite runs one
// write transaction at a time, so concurrent duplicates find the first one instead of failing.
// A malformed id names nothing: it is answered like an unknown one, without a query. It is safe
// for concurrent use.
type SQLStore struct {
	db     *database.DB
	outbox EventOutbox
}

var _ app.Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, which must have Migrations applied (and the outbox's).
func NewSQLStore(db *database.DB, outbox EventOutbox) *SQLStore {
	return &SQLStore{db: db, outbox: outbox}
}

// querier is what reads need: the pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ---------------------------------------------------------------------------- conversations

// CreateConversation implements app.Store.
func (s *SQLStore) CreateConversation(ctx context.Context, c domain.Conversation, viewerID string) (domain.Conversation, bool, error) {
	existing := ""
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if c.Direct() {
			res, err := tx.ExecContext(ctx, `INSERT INTO direct_conversations (user_low, user_high, conversation_id)
				VALUES ($1, $2, $3) ON CONFLICT (user_low, user_high) DO NOTHING`, c.ParticipantIDs[0], c.ParticipantIDs[1], c.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				if err != nil {
					return err
				}
				return tx.QueryRowContext(ctx, `SELECT conversation_id FROM direct_conversations WHERE user_low = $1 AND user_high = $2`,
					c.ParticipantIDs[0], c.ParticipantIDs[1]).Scan(&existing)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (id, created_at) VALUES ($1, $2)`, c.ID, c.CreatedAt); err != nil {
			return err
		}
		for _, p := range c.ParticipantIDs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO participants (conversation_id, user_id, last_activity_at) VALUES ($1, $2, $3)`,
				c.ID, p, c.CreatedAt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return domain.Conversation{}, false, fmt.Errorf("messaging store: create conversation: %w", err)
	}
	if existing != "" {
		got, err := s.Conversation(ctx, existing, viewerID)
		return got, false, err
	}
	c.LastActivityAt, c.LastMessage, c.UnreadCount = c.CreatedAt, nil, 0
	return c, true, nil
}

// convColumns select a conversation as one participant (p) sees it.
const convColumns = `c.id, c.created_at, p.last_activity_at, c.last_message_id, p.last_read_message_id`

// convRow is a conversation read with convColumns, before its participants, last message and
// unread count are filled in.
type convRow struct {
	c           domain.Conversation
	lastMessage sql.NullString
	lastRead    sql.NullString
}

func scanConvRow(sc interface{ Scan(...any) error }) (convRow, error) {
	var r convRow
	err := sc.Scan(&r.c.ID, &r.c.CreatedAt, &r.c.LastActivityAt, &r.lastMessage, &r.lastRead)
	return r, err
}

// Conversation implements app.Store.
func (s *SQLStore) Conversation(ctx context.Context, id, viewerID string) (domain.Conversation, error) {
	if !domain.ValidID(id) || !domain.ValidID(viewerID) {
		return domain.Conversation{}, domain.ErrConversationNotFound
	}
	r, err := scanConvRow(s.db.SQL().QueryRowContext(ctx, `SELECT `+convColumns+`
		FROM participants p JOIN conversations c ON c.id = p.conversation_id
		WHERE p.conversation_id = $1 AND p.user_id = $2`, id, viewerID))
	switch {
	case database.IsNoRows(err):
		return domain.Conversation{}, domain.ErrConversationNotFound
	case err != nil:
		return domain.Conversation{}, fmt.Errorf("messaging store: read conversation: %w", err)
	}
	c, err := s.complete(ctx, s.db.SQL(), r, viewerID)
	if err != nil {
		return domain.Conversation{}, fmt.Errorf("messaging store: read conversation: %w", err)
	}
	return c, nil
}

// complete fills in a conversation's participants, last message and viewerID's unread count.
func (s *SQLStore) complete(ctx context.Context, q querier, r convRow, viewerID string) (domain.Conversation, error) {
	c := r.c
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM participants WHERE conversation_id = $1 ORDER BY user_id`, c.ID)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return c, err
		}
		c.ParticipantIDs = append(c.ParticipantIDs, p)
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	if r.lastMessage.Valid {
		m, err := scanMessage(q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, r.lastMessage.String))
		if err != nil {
			return c, err
		}
		c.LastMessage = &m
		// The bound keeps the count a bounded read (domain.UnreadCountLimit); the index on
		// (conversation_id, id) serves it.
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages
			WHERE conversation_id = $1 AND id > $2 AND sender_id <> $3 LIMIT $4) AS unread`,
			c.ID, r.lastRead.String, viewerID, domain.UnreadCountLimit).Scan(&c.UnreadCount); err != nil {
			return c, err
		}
	}
	return c, nil
}

// ListConversations implements app.Store.
func (s *SQLStore) ListConversations(ctx context.Context, viewerID string, after domain.ConversationCursor, limit int) (domain.ConversationPage, error) {
	if !domain.ValidID(viewerID) {
		return domain.ConversationPage{}, nil
	}
	q := `SELECT ` + convColumns + ` FROM participants p JOIN conversations c ON c.id = p.conversation_id WHERE p.user_id = $1`
	args := []any{viewerID, limit + 1}
	if !after.IsZero() {
		q += ` AND (p.last_activity_at < $3 OR (p.last_activity_at = $3 AND p.conversation_id < $4))`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY p.last_activity_at DESC, p.conversation_id DESC LIMIT $2`
	var page domain.ConversationPage
	// One read-only transaction: the page and what completes it are one snapshot.
	err := s.db.InTxOptions(ctx, &sql.TxOptions{ReadOnly: true}, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		var found []convRow
		for rows.Next() {
			r, err := scanConvRow(rows)
			if err != nil {
				rows.Close()
				return err
			}
			found = append(found, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(found) > limit {
			found = found[:limit]
			last := found[limit-1].c
			page.Next = domain.ConversationCursor{At: last.LastActivityAt, ID: last.ID}
		}
		for _, r := range found {
			c, err := s.complete(ctx, tx, r, viewerID)
			if err != nil {
				return err
			}
			page.Conversations = append(page.Conversations, c)
		}
		return nil
	})
	if err != nil {
		return domain.ConversationPage{}, fmt.Errorf("messaging store: list conversations: %w", err)
	}
	return page, nil
}

// ---------------------------------------------------------------------------------- messages

const messageColumns = `id, conversation_id, sender_id, text, client_msg_id, created_at`

func scanMessage(sc interface{ Scan(...any) error }) (domain.Message, error) {
	var m domain.Message
	err := sc.Scan(&m.ID, &m.ConversationID, &m.SenderID, &m.Text, &m.ClientMsgID, &m.CreatedAt)
	return m, err
}

// participantsOf returns the participants of conversation id, sorted, in tx;
// domain.ErrConversationNotFound unless userID is one of them.
func participantsOf(ctx context.Context, tx *sql.Tx, id, userID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT user_id FROM participants WHERE conversation_id = $1 ORDER BY user_id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	member := false
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		member = member || p == userID
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !member {
		return nil, domain.ErrConversationNotFound
	}
	return out, nil
}

// SendMessage implements app.Store: one transaction stores the message, moves the
// conversation's activity and the sender's read marker forward and records the event, or
// finds the sender's earlier message with the same client id and changes nothing.
func (s *SQLStore) SendMessage(ctx context.Context, m domain.Message, newEvent app.EventFunc) (domain.Message, bool, error) {
	if !domain.ValidID(m.ConversationID) || !domain.ValidID(m.SenderID) {
		return domain.Message{}, false, domain.ErrConversationNotFound
	}
	got, created := m, false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		participants, err := participantsOf(ctx, tx, m.ConversationID, m.SenderID)
		if err != nil {
			return err
		}
		ev, err := newEvent(m, participants)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (conversation_id, sender_id, client_msg_id) DO NOTHING`,
			m.ID, m.ConversationID, m.SenderID, m.Text, m.ClientMsgID, m.CreatedAt)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			got, err = scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages
				WHERE conversation_id = $1 AND sender_id = $2 AND client_msg_id = $3`, m.ConversationID, m.SenderID, m.ClientMsgID))
			return err
		}
		created = true
		// Forward only: a message stored with an older id (a clock behind) is no newer activity.
		for _, q := range []string{
			`UPDATE conversations SET last_message_id = $2 WHERE id = $1 AND (last_message_id IS NULL OR last_message_id < $2)`,
			`UPDATE participants SET last_activity_at = $3 WHERE conversation_id = $1 AND last_activity_at < $3`,
			`UPDATE participants SET last_read_message_id = $2
				WHERE conversation_id = $1 AND user_id = $4 AND (last_read_message_id IS NULL OR last_read_message_id < $2)`,
		} {
			if _, err := tx.ExecContext(ctx, q, m.ConversationID, m.ID, m.CreatedAt, m.SenderID); err != nil {
				return err
			}
		}
		if err := s.outbox.Add(ctx, tx, eventsv1.TopicMessages, ev); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return nil
	})
	switch {
	case errors.Is(err, domain.ErrConversationNotFound):
		return domain.Message{}, false, err
	case err != nil:
		return domain.Message{}, false, fmt.Errorf("messaging store: send message: %w", err)
	}
	if created {
		s.outbox.Kick()
	}
	return got, created, nil
}

// ListMessages implements app.Store.
func (s *SQLStore) ListMessages(ctx context.Context, conversationID, viewerID string, before domain.MessageCursor, limit int) (domain.MessagePage, error) {
	if !domain.ValidID(conversationID) || !domain.ValidID(viewerID) {
		return domain.MessagePage{}, domain.ErrConversationNotFound
	}
	var page domain.MessagePage
	err := s.db.InTxOptions(ctx, &sql.TxOptions{ReadOnly: true}, func(tx *sql.Tx) error {
		if _, err := participantsOf(ctx, tx, conversationID, viewerID); err != nil {
			return err
		}
		q := `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = $1`
		args := []any{conversationID, limit + 1}
		if !before.IsZero() {
			q += ` AND id < $3`
			args = append(args, before.BeforeID)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id DESC LIMIT $2`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			page.Messages = append(page.Messages, m)
		}
		return rows.Err()
	})
	switch {
	case errors.Is(err, domain.ErrConversationNotFound):
		return domain.MessagePage{}, err
	case err != nil:
		return domain.MessagePage{}, fmt.Errorf("messaging store: list messages: %w", err)
	}
	if len(page.Messages) > limit {
		page.Messages = page.Messages[:limit]
		page.Next = domain.MessageCursor{BeforeID: page.Messages[limit-1].ID}
	}
	return page, nil
}

// MarkRead implements app.Store.
func (s *SQLStore) MarkRead(ctx context.Context, conversationID, viewerID, messageID string) error {
	if !domain.ValidID(conversationID) || !domain.ValidID(viewerID) {
		return domain.ErrConversationNotFound
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := participantsOf(ctx, tx, conversationID, viewerID); err != nil {
			return err
		}
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2`, messageID, conversationID).Scan(&one); {
		case database.IsNoRows(err):
			return domain.ErrMessageNotFound
		case err != nil:
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE participants SET last_read_message_id = $3
			WHERE conversation_id = $1 AND user_id = $2 AND (last_read_message_id IS NULL OR last_read_message_id < $3)`,
			conversationID, viewerID, messageID)
		return err
	})
	switch {
	case errors.Is(err, domain.ErrConversationNotFound) || errors.Is(err, domain.ErrMessageNotFound):
		return err
	case err != nil:
		return fmt.Errorf("messaging store: mark read: %w", err)
	}
	return nil
}
