// Package sqlbus is the embedded adapter of events.Bus: a durable event log in a SQLite database,
// consumed in-process. Published messages are rows of a log table; each consumer group keeps a
// persisted cursor per topic and partition, moved only when its handler acks. So the bus keeps
// every event across restarts and delivers it at least once to every group; an event is gone
// for a group only after the group acked it.
//
// Why not watermill-sql (which the module already has): its SQL subscriber holds one database
// transaction open while the handler runs and records consumption inside it. On SQLite, where
// a writing transaction locks the whole database, that would stall every publisher and every
// other group behind the slowest handler, and deadlock a handler that writes to the same
// database (the dedupe claim, the service's own tables) until the busy timeout. Its offsets
// adapters rely on row locks (FOR UPDATE) and, on PostgreSQL, transaction ids, which SQLite
// lacks, and its only wake-up is polling, too slow for the sub-10 ms delivery we want. The log
// table below needs none of that: SQLite serializes writers, so seq order is commit order and a
// cursor never skips a message that commits late; delivery is woken in-process on publish.
//
// Semantics:
//   - A message goes to partition fnv32a(partition key) mod Partitions (keyless: by UUID).
//     Within a group and topic each partition is consumed strictly in order, one message in
//     flight, the next sent only after the previous was acked; partitions run in parallel.
//   - A group's first Subscribe to a topic starts its cursors at the end of the log: it gets
//     every message published after that first subscription, across restarts.
//   - Nack redelivers the same message after Config.NackResendDelay; a message left unacked
//     when its subscription ends (Close, context cancelled, process exit) is delivered again to
//     the group's next subscriber.
//   - Several subscriptions of one group in the process share the group's partitions. Only one
//     process may consume a group from a given database file.
//   - Messages acked by every group of their topic (or of a topic no group consumes) are
//     deleted by Prune once older than Config.Retention.
//
// The bus reports the gauge events.consumer.lag (LagMetric): per group consuming in this process,
// topic and partition, the messages above the group's cursor.
//
// Give the bus a database file of its own (Config.Path, e.g. ./data/events.db) unless no one
// publishes from inside a write transaction on the same database: Publish needs SQLite's write
// lock, which such a transaction holds until it ends.
package sqlbus

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the bus's schema, applied by New. It exists for SQLite only.
var Migrations = database.MigrationSet{Name: "sqlbus", FS: migrationFiles, Dir: "migrations"}

// Partitions is the number of ordered lanes per topic. It is fixed because a message's
// partition is stored with it: changing it would break the ordering of stored messages.
const Partitions = 8

// ErrClosed is returned by a closed bus or subscriber.
var ErrClosed = errors.New("sqlbus: closed")

// Config configures a Bus.
type Config struct {
	// DB is the SQLite database holding the log; the caller keeps ownership. If nil, Path is
	// opened (and closed by Close). See the package doc before sharing a service's database.
	DB *database.DB
	// Path of the SQLite file to open when DB is nil, e.g. ./data/events.db.
	Path string
	// NackResendDelay is the pause before a nacked message is sent again. Default 100 ms;
	// negative: none.
	NackResendDelay time.Duration
	// PollInterval is how often an idle partition looks at the log even without an in-process
	// publish (the safety net for rows written by another process). Default 1 s.
	PollInterval time.Duration
	// Retention is how long a message fully consumed, or of a topic nobody consumes (such as
	// dead letters), is kept. Default 7 days.
	Retention time.Duration
	// PruneInterval is how often Prune runs in the background. Default 10 minutes; negative:
	// never (call Prune yourself).
	PruneInterval time.Duration
	// FetchBatch is how many messages a partition reads from the log at once. Default 64.
	FetchBatch int
	// MeterProvider makes the bus's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

func (c *Config) fillDefaults() {
	if c.NackResendDelay == 0 {
		c.NackResendDelay = 100 * time.Millisecond
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = 10 * time.Minute
	}
	if c.FetchBatch == 0 {
		c.FetchBatch = 64
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
}

func (c *Config) validate() error {
	switch {
	case c.DB == nil && c.Path == "":
		return errors.New("sqlbus: config needs DB or Path")
	case c.DB != nil && c.DB.Dialect() != database.SQLite:
		// On PostgreSQL a seq can commit after a higher one, and a cursor would skip it.
		return fmt.Errorf("sqlbus: needs a SQLite database, got %s", c.DB.Dialect())
	case c.PollInterval < 0:
		return errors.New("sqlbus: PollInterval must not be negative")
	case c.Retention < 0:
		return errors.New("sqlbus: Retention must not be negative")
	case c.FetchBatch < 0:
		return errors.New("sqlbus: FetchBatch must not be negative")
	}
	return nil
}

// Bus is the SQLite event bus. It implements events.Bus.
type Bus struct {
	cfg    Config
	db     *database.DB
	ownsDB bool
	log    *slog.Logger
	lagReg metric.Registration

	// ctx is cancelled by Close; every subscription and background loop derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // forwarders, workers, janitor

	mu      sync.Mutex
	closed  bool
	signals map[string]*signal  // per topic: woken on publish
	groups  map[groupKey]*group // running consumers per topic and group
	// finished holds the done channel of each group's last stopped run.
	finished map[groupKey]<-chan struct{}
}

var _ events.Bus = (*Bus)(nil)

// New opens the bus, applying its migrations. log may be nil.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, owns := cfg.DB, false
	if db == nil {
		var err error
		db, err = database.Open(ctx, database.Config{URL: "sqlite:" + cfg.Path}, log)
		if err != nil {
			return nil, fmt.Errorf("sqlbus: %w", err)
		}
		owns = true
	}
	if _, err := database.Migrate(ctx, db, Migrations); err != nil {
		if owns {
			_ = db.Close()
		}
		return nil, fmt.Errorf("sqlbus: %w", err)
	}
	b := &Bus{
		cfg: cfg, db: db, ownsDB: owns, log: log.With("component", "sqlbus"),
		signals: map[string]*signal{}, groups: map[groupKey]*group{}, finished: map[groupKey]<-chan struct{}{},
	}
	lagReg, err := b.registerLag(cfg.MeterProvider)
	if err != nil {
		if owns {
			_ = db.Close()
		}
		return nil, err
	}
	b.lagReg = lagReg
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if cfg.PruneInterval > 0 {
		b.wg.Go(b.janitor)
	}
	return b, nil
}

// Publish appends msgs to topic's log in one transaction: all are stored or none. It returns
// once they are durable in the database (in WAL mode with synchronous=NORMAL: safe from a
// process crash) and wakes the topic's consumers.
func (b *Bus) Publish(topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errors.New("sqlbus: empty topic")
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	type row struct {
		part     int
		uuid     string
		metadata []byte
		payload  []byte
	}
	rows := make([]row, len(msgs))
	for i, m := range msgs {
		md, err := json.Marshal(m.Metadata)
		if err != nil {
			return fmt.Errorf("sqlbus: encode metadata of %s: %w", m.UUID, err)
		}
		payload := []byte(m.Payload)
		if payload == nil {
			payload = []byte{}
		}
		rows[i] = row{part: partitionOf(m), uuid: m.UUID, metadata: md, payload: payload}
	}
	now := time.Now()
	err := b.db.InTx(b.ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(b.ctx,
				`INSERT INTO bus_messages (topic, part, uuid, metadata, payload, published_at) VALUES ($1, $2, $3, $4, $5, $6)`,
				topic, r.part, r.uuid, string(r.metadata), r.payload, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlbus: publish to %s: %w", topic, err)
	}
	b.signalFor(topic).notify()
	return nil
}

// Subscriber returns a subscriber consuming as group.
func (b *Bus) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("sqlbus: empty consumer group")
	}
	return &Subscriber{bus: b, group: group}, nil
}

// Close ends every subscription (their unacked messages stay in the log for the next run),
// stops background work and, if the bus opened the database, closes it.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	_ = b.lagReg.Unregister()
	b.cancel()
	b.wg.Wait()
	if b.ownsDB {
		return b.db.Close()
	}
	return nil
}

// Prune deletes messages published more than Retention ago that every consumer group of their
// topic has acked (all of them, for a topic no group consumes). It returns how many it deleted.
func (b *Bus) Prune(ctx context.Context) (int64, error) {
	cutoff := time.Now().Add(-b.cfg.Retention)
	var total int64
	for {
		// In slices, so that the write lock is never held for long.
		var n int64
		err := b.db.InTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM bus_messages WHERE seq IN (
				SELECT m.seq FROM bus_messages m
				WHERE m.published_at < $1
				  AND m.seq <= coalesce((SELECT min(o.acked_seq) FROM bus_offsets o
				                         WHERE o.topic = m.topic AND o.part = m.part), 9223372036854775807)
				LIMIT 1000)`, cutoff)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlbus: prune: %w", err)
		}
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}

func (b *Bus) janitor() {
	t := time.NewTicker(b.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			if n, err := b.Prune(b.ctx); err != nil && b.ctx.Err() == nil {
				b.log.WarnContext(b.ctx, "pruning the event log failed", "error", err)
			} else if n > 0 {
				b.log.InfoContext(b.ctx, "pruned the event log", "deleted", n)
			}
		}
	}
}

func partitionOf(m *message.Message) int {
	key := m.Metadata.Get(events.PartitionKey)
	if key == "" {
		key = m.UUID
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % Partitions)
}

// signal wakes everyone waiting on it: wait returns a channel closed by the next notify.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func (b *Bus) signalFor(topic string) *signal {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.signals[topic]
	if s == nil {
		s = &signal{ch: make(chan struct{})}
		b.signals[topic] = s
	}
	return s
}
