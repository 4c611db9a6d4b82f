package adapters

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/sync/errgroup"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/app"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

//go:embed cql/*.cql
var cqlFiles embed.FS

// CassandraMigrations is the schema of CassandraStore (migration set "messaging"), applied by
// the messaging-migration job with cassandra.Migrate before the service starts. The files hold
// the data model and why each table is shaped as it is.
var CassandraMigrations = cassandra.MigrationSet{Name: "messaging", FS: cqlFiles, Dir: "cql"}

// Defaults and constants of the Cassandra data model.
const (
	// DefaultBucketSize is the time span of one messages partition: 10 days, as Discord
	// buckets its messages. A conversation holding 100 000 messages in 10 days (one every
	// ~9 s, day and night) still makes partitions of a few tens of megabytes.
	DefaultBucketSize = 10 * 24 * time.Hour
	// PendingShards is the number of partitions of pending_events. It is part of the data
	// model: writers hash conversations onto it and the forwarder reads each shard, so it is a
	// constant, not a setting (lowering it would strand the events of the shards dropped).
	PendingShards = 16
	// leaseName is the key of the forwarder's lease row.
	leaseName = "messaging-forwarder"
	// hydrateParallelism bounds the concurrent reads that complete one page of conversations.
	hydrateParallelism = 8
)

// CassandraConfig configures a CassandraStore.
type CassandraConfig struct {
	// Session is a session of the keyspace holding CassandraMigrations, from cassandra.Open.
	// Required.
	Session *gocql.Session
	// BucketSize is the time span of a messages partition; default DefaultBucketSize. It is
	// part of the data model: every process using a keyspace must use the same one, and it
	// must never change once messages are stored (they would be looked for in the wrong
	// partitions). Tests shrink it to cross buckets quickly. At least one second.
	BucketSize time.Duration
	// SerialConsistency of the lightweight transactions that make conversations of a pair and
	// client message ids unique, and of the forwarder lease. Default gocql.Serial: the claim
	// is unique across data centres, so a client retrying against another data centre still
	// finds its first send. gocql.LocalSerial is cheaper when each conversation is only ever
	// written in one data centre.
	SerialConsistency gocql.Consistency
	// Propagator writes the trace context of a send into its pending event's metadata; nil
	// means otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// CassandraStore keeps messaging-service's state in Cassandra (the tables and their reasons are
// in cql/0001_create_messaging.cql).
//
// Consistency levels, set on every statement: reads and writes LOCAL_QUORUM (read-your-writes
// within the data centre, one replica of three may be down); the uniqueness claims (a pair's
// conversation, a client message id) and the forwarder lease are lightweight transactions at
// CassandraConfig.SerialConsistency (SERIAL by default) committed at LOCAL_QUORUM.
//
// Atomicity: a message, its bucket's index entry, the conversation's activity, the
// participants' list rows, the sender's read marker and the message.sent event are one LOGGED
// batch: the batchlog applies all of it or, after a coordinator failure, replays it, so an
// event exists if and only if its message does. A send that claimed its client id but died
// before the batch is completed by the next send with that client id, from the claim row.
//
// It is safe for concurrent use.
type CassandraStore struct {
	s      *gocql.Session
	bucket int64 // bucket size in milliseconds
	serial gocql.Consistency
	prop   propagation.TextMapPropagator
	// wake holds at most one pending kick for the forwarder.
	wake chan struct{}
	// written has bit n set when this process wrote an event to shard n since the forwarder
	// last took the set: a kicked round reads those shards only (see takeWritten).
	written atomic.Uint32
}

// Sets of shards are uint32 bit sets; this fails to compile if PendingShards outgrows them.
const _ = uint32(1) << (PendingShards - 1)

var _ app.Store = (*CassandraStore)(nil)

// NewCassandraStore validates cfg and fills its defaults. It does no I/O.
func NewCassandraStore(cfg CassandraConfig) (*CassandraStore, error) {
	if cfg.Session == nil {
		return nil, errors.New("messaging store: CassandraConfig.Session is required")
	}
	if cfg.BucketSize == 0 {
		cfg.BucketSize = DefaultBucketSize
	}
	if cfg.BucketSize < time.Second {
		return nil, errors.New("messaging store: BucketSize must be at least one second")
	}
	if cfg.SerialConsistency == 0 {
		cfg.SerialConsistency = gocql.Serial
	}
	if cfg.SerialConsistency != gocql.Serial && cfg.SerialConsistency != gocql.LocalSerial {
		return nil, errors.New("messaging store: SerialConsistency must be SERIAL or LOCAL_SERIAL")
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return &CassandraStore{
		s: cfg.Session, bucket: cfg.BucketSize.Milliseconds(), serial: cfg.SerialConsistency, prop: cfg.Propagator,
		wake: make(chan struct{}, 1),
	}, nil
}

// BucketSize returns the time span of a messages partition.
func (s *CassandraStore) BucketSize() time.Duration {
	return time.Duration(s.bucket) * time.Millisecond
}

// kick records that an event was written to shard and wakes the forwarder; it never blocks
// and kicks coalesce. It is called once the event is written, so a round that takes the
// shard after the kick reads the event.
func (s *CassandraStore) kick(shard int) {
	s.written.Or(1 << shard)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeWritten returns the shards written by this process since the last call, and clears
// them.
func (s *CassandraStore) takeWritten() uint32 { return s.written.Swap(0) }

// read returns a LOCAL_QUORUM query, safe to retry.
func (s *CassandraStore) read(stmt string, args ...any) *gocql.Query {
	return s.s.Query(stmt, args...).Consistency(gocql.LocalQuorum).Idempotent(true)
}

// write returns a LOCAL_QUORUM write.
func (s *CassandraStore) write(stmt string, args ...any) *gocql.Query {
	return s.s.Query(stmt, args...).Consistency(gocql.LocalQuorum)
}

// claim returns a lightweight transaction at the configured serial consistency.
func (s *CassandraStore) claim(stmt string, args ...any) *gocql.Query {
	return s.write(stmt, args...).SerialConsistency(s.serial)
}

// batch returns a LOGGED batch at LOCAL_QUORUM.
func (s *CassandraStore) batch() *gocql.Batch {
	return s.s.Batch(gocql.LoggedBatch).Consistency(gocql.LocalQuorum)
}

// bucketOf returns the bucket of the message id, from the time it carries; ok is false for an
// id that is no UUIDv7 (it names no message).
func (s *CassandraStore) bucketOf(id string) (int64, bool) {
	at, ok := domain.IDTime(id)
	if !ok {
		return 0, false
	}
	return at.UnixMilli() / s.bucket, true
}

// writeTime is the write timestamp (µs) of cells that name the message or conversation id:
// its time to the millisecond plus its sub-millisecond fraction, so that last-write-wins keeps
// the newest. On an exact tie Cassandra keeps the greater value, for a uuid the later id.
func writeTime(id string) int64 {
	at, _ := domain.IDTime(id)
	return at.UnixMilli()*1000 + int64(domain.IDFraction(id))*1000/4096
}

// shardOf returns the pending_events shard of a conversation.
func shardOf(conversationID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(conversationID))
	return int(h.Sum32() % PendingShards)
}

// ---------------------------------------------------------------------------- conversations

// convRecord is a row of conversations.
type convRecord struct {
	id           string
	participants []string
	createdAt    time.Time
	lastActivity time.Time
	lastMessage  string
	readMarkers  map[string]string
}

// conversation reads the row of conversation id; found is false when there is none.
func (s *CassandraStore) conversation(ctx context.Context, id string) (r convRecord, found bool, err error) {
	r.id = id
	err = s.read(`SELECT participant_ids, created_at, last_activity_at, last_message_id, read_markers
		FROM conversations WHERE conversation_id = ?`, id).
		ScanContext(ctx, &r.participants, &r.createdAt, &r.lastActivity, &r.lastMessage, &r.readMarkers)
	if errors.Is(err, gocql.ErrNotFound) {
		return convRecord{}, false, nil
	}
	if err != nil {
		return convRecord{}, false, err
	}
	slices.Sort(r.participants)
	r.createdAt, r.lastActivity = r.createdAt.UTC(), r.lastActivity.UTC()
	return r, true, nil
}

// member reads conversation id for userID: domain.ErrConversationNotFound when there is no
// such conversation or userID does not take part.
func (s *CassandraStore) member(ctx context.Context, id, userID string) (convRecord, error) {
	if !domain.ValidID(id) || !domain.ValidID(userID) {
		return convRecord{}, domain.ErrConversationNotFound
	}
	r, found, err := s.conversation(ctx, id)
	switch {
	case err != nil:
		return convRecord{}, err
	case !found || !slices.Contains(r.participants, userID):
		return convRecord{}, domain.ErrConversationNotFound
	}
	return r, nil
}

// CreateConversation implements app.Store. A one-to-one conversation is claimed for its pair
// with a lightweight transaction first; the loser of a concurrent creation gets the winner's
// conversation, and completes it should the winner have died before writing it.
func (s *CassandraStore) CreateConversation(ctx context.Context, c domain.Conversation, viewerID string) (domain.Conversation, bool, error) {
	if c.Direct() {
		existing := map[string]any{}
		applied, err := s.claim(`INSERT INTO direct_conversations (user_low, user_high, conversation_id, created_at)
			VALUES (?, ?, ?, ?) IF NOT EXISTS`, c.ParticipantIDs[0], c.ParticipantIDs[1], c.ID, c.CreatedAt).MapScanCASContext(ctx, existing)
		if err != nil {
			return domain.Conversation{}, false, fmt.Errorf("messaging store: claim the pair's conversation: %w", err)
		}
		if !applied {
			id, _ := existing["conversation_id"].(gocql.UUID)
			createdAt, _ := existing["created_at"].(time.Time)
			if _, found, err := s.conversation(ctx, id.String()); err != nil {
				return domain.Conversation{}, false, fmt.Errorf("messaging store: read the pair's conversation: %w", err)
			} else if !found {
				orig := domain.Conversation{ID: id.String(), ParticipantIDs: c.ParticipantIDs, CreatedAt: createdAt.UTC()}
				if err := s.writeConversation(ctx, orig); err != nil {
					return domain.Conversation{}, false, err
				}
			}
			got, err := s.Conversation(ctx, id.String(), viewerID)
			return got, false, err
		}
	}
	if err := s.writeConversation(ctx, c); err != nil {
		return domain.Conversation{}, false, err
	}
	c.LastActivityAt, c.LastMessage, c.UnreadCount = c.CreatedAt, nil, 0
	return c, true, nil
}

// writeConversation writes the conversation row and every participant's list row in one
// logged batch. The row is written at the conversation's own time, so that rewriting it (to
// complete a creation) never undoes a later message.
func (s *CassandraStore) writeConversation(ctx context.Context, c domain.Conversation) error {
	b := s.batch()
	b.Query(`INSERT INTO conversations (conversation_id, participant_ids, created_at, last_activity_at)
		VALUES (?, ?, ?, ?) USING TIMESTAMP ?`, c.ID, c.ParticipantIDs, c.CreatedAt, c.CreatedAt, writeTime(c.ID))
	for _, p := range c.ParticipantIDs {
		b.Query(`INSERT INTO conversations_by_user (user_id, last_activity_at, conversation_id) VALUES (?, ?, ?)`, p, c.CreatedAt, c.ID)
	}
	if err := b.ExecContext(ctx); err != nil {
		return fmt.Errorf("messaging store: write conversation: %w", err)
	}
	return nil
}

// Conversation implements app.Store.
func (s *CassandraStore) Conversation(ctx context.Context, id, viewerID string) (domain.Conversation, error) {
	r, err := s.member(ctx, id, viewerID)
	if errors.Is(err, domain.ErrConversationNotFound) {
		return domain.Conversation{}, err
	}
	if err != nil {
		return domain.Conversation{}, fmt.Errorf("messaging store: read conversation: %w", err)
	}
	c, err := s.complete(ctx, r, viewerID)
	if err != nil {
		return domain.Conversation{}, fmt.Errorf("messaging store: read conversation: %w", err)
	}
	return c, nil
}

// complete turns a conversation row into the conversation viewerID sees: its last message and
// the viewer's unread count (read from the messages after the viewer's marker, at most
// domain.UnreadCountLimit of them; nothing to read when the marker is at the last message).
func (s *CassandraStore) complete(ctx context.Context, r convRecord, viewerID string) (domain.Conversation, error) {
	c := domain.Conversation{ID: r.id, ParticipantIDs: r.participants, CreatedAt: r.createdAt, LastActivityAt: r.lastActivity}
	if r.lastMessage == "" {
		return c, nil
	}
	m, found, err := s.message(ctx, r.id, r.lastMessage)
	if err != nil {
		return c, err
	}
	if found {
		c.LastMessage = &m
	}
	marker := r.readMarkers[viewerID]
	if marker >= r.lastMessage {
		return c, nil
	}
	c.UnreadCount, err = s.countAfter(ctx, r.id, marker, viewerID)
	return c, err
}

// countAfter counts the messages of others after the marker ("" is before the first), walking
// the non-empty buckets from the newest down to the marker's, up to domain.UnreadCountLimit.
func (s *CassandraStore) countAfter(ctx context.Context, conversationID, marker, viewerID string) (int64, error) {
	low := int64(math.MinInt64)
	after := "00000000-0000-0000-0000-000000000000"
	if marker != "" {
		low, _ = s.bucketOf(marker)
		after = marker
	}
	var n int64
	buckets := s.read(`SELECT bucket FROM message_buckets WHERE conversation_id = ? AND bucket >= ?`, conversationID, low).IterContext(ctx)
	var bucket int64
	for n < domain.UnreadCountLimit && buckets.Scan(&bucket) {
		rows := s.read(`SELECT sender_id FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id > ? LIMIT ?`,
			conversationID, bucket, after, domain.UnreadCountLimit).IterContext(ctx)
		var sender string
		for n < domain.UnreadCountLimit && rows.Scan(&sender) {
			if sender != viewerID {
				n++
			}
		}
		if err := rows.Close(); err != nil {
			_ = buckets.Close()
			return 0, err
		}
	}
	if err := buckets.Close(); err != nil {
		return 0, err
	}
	return n, nil
}

// ListConversations implements app.Store. It reads the viewer's list rows from the cursor on,
// keeps those at their conversation's current activity (others are left-overs of concurrent
// sends, deleted on the way), and completes each kept conversation, several at a time.
func (s *CassandraStore) ListConversations(ctx context.Context, viewerID string, after domain.ConversationCursor, limit int) (domain.ConversationPage, error) {
	if !domain.ValidID(viewerID) {
		return domain.ConversationPage{}, nil
	}
	var (
		kept   []convRecord
		cursor = after
	)
	for len(kept) <= limit {
		type listRow struct {
			at time.Time
			id string
		}
		var rows []listRow
		q := s.read(`SELECT last_activity_at, conversation_id FROM conversations_by_user WHERE user_id = ? LIMIT ?`, viewerID, limit+1)
		if !cursor.IsZero() {
			q = s.read(`SELECT last_activity_at, conversation_id FROM conversations_by_user
				WHERE user_id = ? AND (last_activity_at, conversation_id) < (?, ?) LIMIT ?`, viewerID, cursor.At, cursor.ID, limit+1)
		}
		it := q.IterContext(ctx)
		var r listRow
		for it.Scan(&r.at, &r.id) {
			rows = append(rows, listRow{at: r.at.UTC(), id: r.id})
		}
		if err := it.Close(); err != nil {
			return domain.ConversationPage{}, fmt.Errorf("messaging store: list conversations: %w", err)
		}
		recs := make([]convRecord, len(rows))
		found := make([]bool, len(rows))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(hydrateParallelism)
		for i, row := range rows {
			g.Go(func() error {
				var err error
				recs[i], found[i], err = s.conversation(gctx, row.id)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return domain.ConversationPage{}, fmt.Errorf("messaging store: list conversations: %w", err)
		}
		for i, row := range rows {
			rec := recs[i]
			switch {
			case !found[i] || !slices.Contains(rec.participants, viewerID):
				// Not written yet (a creation in flight): not listed.
			case row.at.Equal(rec.lastActivity):
				kept = append(kept, rec)
			case row.at.Before(rec.lastActivity):
				// Superseded by a newer activity: a left-over of concurrent sends.
				if err := s.write(`DELETE FROM conversations_by_user WHERE user_id = ? AND last_activity_at = ? AND conversation_id = ?`,
					viewerID, row.at, row.id).ExecContext(ctx); err != nil {
					return domain.ConversationPage{}, fmt.Errorf("messaging store: delete a superseded list row: %w", err)
				}
			}
		}
		if len(rows) <= limit {
			break // the list is exhausted
		}
		cursor = domain.ConversationCursor{At: rows[len(rows)-1].at, ID: rows[len(rows)-1].id}
	}
	var page domain.ConversationPage
	if len(kept) > limit {
		kept = kept[:limit]
		last := kept[limit-1]
		page.Next = domain.ConversationCursor{At: last.lastActivity, ID: last.id}
	}
	page.Conversations = make([]domain.Conversation, len(kept))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(hydrateParallelism)
	for i, rec := range kept {
		g.Go(func() error {
			var err error
			page.Conversations[i], err = s.complete(gctx, rec, viewerID)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return domain.ConversationPage{}, fmt.Errorf("messaging store: list conversations: %w", err)
	}
	return page, nil
}

// ---------------------------------------------------------------------------------- messages

// message reads one message; found is false when the conversation holds no such message.
func (s *CassandraStore) message(ctx context.Context, conversationID, id string) (m domain.Message, found bool, err error) {
	bucket, ok := s.bucketOf(id)
	if !ok {
		return domain.Message{}, false, nil
	}
	err = s.read(`SELECT message_id, sender_id, text, client_msg_id, created_at FROM messages
		WHERE conversation_id = ? AND bucket = ? AND message_id = ?`, conversationID, bucket, id).
		ScanContext(ctx, &m.ID, &m.SenderID, &m.Text, &m.ClientMsgID, &m.CreatedAt)
	if errors.Is(err, gocql.ErrNotFound) {
		return domain.Message{}, false, nil
	}
	if err != nil {
		return domain.Message{}, false, err
	}
	m.ConversationID, m.CreatedAt = conversationID, m.CreatedAt.UTC()
	return m, true, nil
}

// SendMessage implements app.Store: check membership, claim the client id (a lightweight
// transaction), then write everything in one logged batch. A lost claim returns the claimed
// message, first completing it if its batch is not visible (its sender may have died between
// the claim and the batch); the completion rewrites the same rows and the same event, so it is
// harmless when the original batch lands too.
func (s *CassandraStore) SendMessage(ctx context.Context, m domain.Message, newEvent app.EventFunc) (domain.Message, bool, error) {
	conv, err := s.member(ctx, m.ConversationID, m.SenderID)
	if errors.Is(err, domain.ErrConversationNotFound) {
		return domain.Message{}, false, err
	}
	if err != nil {
		return domain.Message{}, false, fmt.Errorf("messaging store: send message: %w", err)
	}
	ev, err := newEvent(m, conv.participants)
	if err != nil {
		return domain.Message{}, false, err
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return domain.Message{}, false, fmt.Errorf("messaging store: encode event: %w", err)
	}
	existing := map[string]any{}
	applied, err := s.claim(`INSERT INTO message_ids (conversation_id, sender_id, client_msg_id, message_id, text, event)
		VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`, m.ConversationID, m.SenderID, m.ClientMsgID, m.ID, m.Text, evJSON).MapScanCASContext(ctx, existing)
	if err != nil {
		return domain.Message{}, false, fmt.Errorf("messaging store: claim the client message id: %w", err)
	}
	if applied {
		if err := s.writeMessage(ctx, conv, m, ev); err != nil {
			return domain.Message{}, false, err
		}
		return m, true, nil
	}

	orig, origEv, err := claimed(m, existing)
	if err != nil {
		return domain.Message{}, false, fmt.Errorf("messaging store: read the claimed message: %w", err)
	}
	if _, found, err := s.message(ctx, orig.ConversationID, orig.ID); err != nil {
		return domain.Message{}, false, fmt.Errorf("messaging store: read the claimed message: %w", err)
	} else if !found {
		if err := s.writeMessage(ctx, conv, orig, origEv); err != nil {
			return domain.Message{}, false, err
		}
	}
	return orig, false, nil
}

// claimed rebuilds the message and event of a message_ids row that a send m lost to.
func claimed(m domain.Message, row map[string]any) (domain.Message, events.Envelope, error) {
	id, _ := row["message_id"].(gocql.UUID)
	text, _ := row["text"].(string)
	raw, _ := row["event"].([]byte)
	orig := domain.Message{ID: id.String(), ConversationID: m.ConversationID, SenderID: m.SenderID, Text: text, ClientMsgID: m.ClientMsgID}
	at, ok := domain.IDTime(orig.ID)
	if !ok {
		return domain.Message{}, events.Envelope{}, fmt.Errorf("claimed message id %q is not a UUIDv7", orig.ID)
	}
	orig.CreatedAt = at
	var ev events.Envelope
	if err := json.Unmarshal(raw, &ev); err != nil {
		return domain.Message{}, events.Envelope{}, fmt.Errorf("claimed event: %w", err)
	}
	return orig, ev, nil
}

// writeMessage writes m with everything that changes with it in one logged batch; conv is the
// conversation as read before the send (its last activity says which list rows to move).
func (s *CassandraStore) writeMessage(ctx context.Context, conv convRecord, m domain.Message, ev events.Envelope) error {
	msg, err := events.NewMessage(ctx, ev, s.prop)
	if err != nil {
		return fmt.Errorf("messaging store: %w", err)
	}
	bucket, _ := s.bucketOf(m.ID)
	wt := writeTime(m.ID)
	b := s.batch()
	b.Query(`INSERT INTO messages (conversation_id, bucket, message_id, sender_id, text, client_msg_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, m.ConversationID, bucket, m.ID, m.SenderID, m.Text, m.ClientMsgID, m.CreatedAt)
	b.Query(`INSERT INTO message_buckets (conversation_id, bucket) VALUES (?, ?)`, m.ConversationID, bucket)
	b.Query(`UPDATE conversations USING TIMESTAMP ? SET last_message_id = ?, last_activity_at = ?, read_markers[?] = ?
		WHERE conversation_id = ?`, wt, m.ID, m.CreatedAt, m.SenderID, m.ID, m.ConversationID)
	// Move every participant's list row, unless a newer activity moved it already (then this
	// message is not the conversation's newest and the rows stay where they are).
	if conv.lastActivity.Before(m.CreatedAt) {
		for _, p := range conv.participants {
			b.Query(`DELETE FROM conversations_by_user WHERE user_id = ? AND last_activity_at = ? AND conversation_id = ?`,
				p, conv.lastActivity, m.ConversationID)
			b.Query(`INSERT INTO conversations_by_user (user_id, last_activity_at, conversation_id) VALUES (?, ?, ?)`,
				p, m.CreatedAt, m.ConversationID)
		}
	}
	shard := shardOf(m.ConversationID)
	b.Query(`INSERT INTO pending_events (shard, seq, event_id, topic, payload, metadata) VALUES (?, ?, ?, ?, ?, ?)`,
		shard, m.ID, ev.ID, eventsv1.TopicMessages, msg.Payload, map[string]string(msg.Metadata))
	if err := b.ExecContext(ctx); err != nil {
		return fmt.Errorf("messaging store: write message: %w", err)
	}
	s.kick(shard)
	return nil
}

// ListMessages implements app.Store: it walks the conversation's non-empty buckets from the
// cursor's (or the newest) down, reading from each what the page still needs.
func (s *CassandraStore) ListMessages(ctx context.Context, conversationID, viewerID string, before domain.MessageCursor, limit int) (domain.MessagePage, error) {
	if _, err := s.member(ctx, conversationID, viewerID); err != nil {
		if errors.Is(err, domain.ErrConversationNotFound) {
			return domain.MessagePage{}, err
		}
		return domain.MessagePage{}, fmt.Errorf("messaging store: list messages: %w", err)
	}
	high := int64(math.MaxInt64)
	beforeID := "ffffffff-ffff-ffff-ffff-ffffffffffff"
	if !before.IsZero() {
		high, _ = s.bucketOf(before.BeforeID)
		beforeID = before.BeforeID
	}
	var page domain.MessagePage
	buckets := s.read(`SELECT bucket FROM message_buckets WHERE conversation_id = ? AND bucket <= ?`, conversationID, high).
		PageSize(32).IterContext(ctx)
	var bucket int64
	for len(page.Messages) <= limit && buckets.Scan(&bucket) {
		// Every id of an older bucket is below beforeID too, so one statement serves all.
		rows := s.read(`SELECT message_id, sender_id, text, client_msg_id, created_at FROM messages
			WHERE conversation_id = ? AND bucket = ? AND message_id < ? LIMIT ?`,
			conversationID, bucket, beforeID, limit+1-len(page.Messages)).IterContext(ctx)
		var m domain.Message
		for rows.Scan(&m.ID, &m.SenderID, &m.Text, &m.ClientMsgID, &m.CreatedAt) {
			m.ConversationID, m.CreatedAt = conversationID, m.CreatedAt.UTC()
			page.Messages = append(page.Messages, m)
		}
		if err := rows.Close(); err != nil {
			_ = buckets.Close()
			return domain.MessagePage{}, fmt.Errorf("messaging store: list messages: %w", err)
		}
	}
	if err := buckets.Close(); err != nil {
		return domain.MessagePage{}, fmt.Errorf("messaging store: list messages: %w", err)
	}
	if len(page.Messages) > limit {
		page.Messages = page.Messages[:limit]
		page.Next = domain.MessageCursor{BeforeID: page.Messages[limit-1].ID}
	}
	return page, nil
}

// MarkRead implements app.Store. The marker is written at the message's time, so
// last-write-wins keeps the furthest marker: moving it back is a write that loses.
func (s *CassandraStore) MarkRead(ctx context.Context, conversationID, viewerID, messageID string) error {
	if _, err := s.member(ctx, conversationID, viewerID); err != nil {
		if errors.Is(err, domain.ErrConversationNotFound) {
			return err
		}
		return fmt.Errorf("messaging store: mark read: %w", err)
	}
	_, found, err := s.message(ctx, conversationID, messageID)
	switch {
	case err != nil:
		return fmt.Errorf("messaging store: mark read: %w", err)
	case !found:
		return domain.ErrMessageNotFound
	}
	if err := s.write(`UPDATE conversations USING TIMESTAMP ? SET read_markers[?] = ? WHERE conversation_id = ?`,
		writeTime(messageID), viewerID, messageID, conversationID).ExecContext(ctx); err != nil {
		return fmt.Errorf("messaging store: mark read: %w", err)
	}
	return nil
}
