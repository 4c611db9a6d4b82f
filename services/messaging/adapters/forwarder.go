package adapters

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// instrumentationName names the meter of the forwarder.
const instrumentationName = "github.com/piazza-social/piazza/services/messaging/adapters"

// forwarderDeleteTimeout bounds the deletion that follows a successful publish. It runs even
// when Run's context was cancelled meanwhile: skipping it would publish those events again.
const forwarderDeleteTimeout = 10 * time.Second

// ForwarderConfig configures a CassandraForwarder.
type ForwarderConfig struct {
	// Store whose pending events are forwarded (its session, and its kicks to wake up).
	// Required.
	Store *CassandraStore
	// Publisher receives the events, usually the process's events.Bus. Required.
	Publisher message.Publisher
	// Owner names this forwarder in the lease row. Default the host name and a random suffix.
	// Two forwarders must never share an owner.
	Owner string
	// BatchSize is how many events are read and published per shard and round. Default 100.
	BatchSize int
	// PollInterval is how often every shard is read, to find events written by another replica
	// (a round woken by this process's sends reads only the shards they wrote), and how often
	// a standby tries to take the lease. Default 1 s.
	PollInterval time.Duration
	// ReadBehind is how far behind the newest event it published a round starts reading a
	// shard. Events are positioned by message id, made before the send's batch is written, so
	// concurrent sends land slightly out of id order: reading from a little before the last
	// published position finds them at once, and skips the tombstones of everything older.
	// Default 10 s.
	ReadBehind time.Duration
	// RescanInterval is how often a round reads every shard from its start instead, to catch
	// events whose batch became visible later than ReadBehind (a batchlog replay after a
	// coordinator failure). Default 30 s.
	RescanInterval time.Duration
	// LeaseTTL is how long the lease outlives a forwarder that stopped renewing it (crashed);
	// the holder renews it every LeaseTTL/3. Default 15 s.
	LeaseTTL time.Duration
	// Backoff is the pause after the first failed round; it doubles with each further failure
	// up to MaxBackoff. Defaults 100 ms and 10 s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MeterProvider makes the forwarder's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

func (c *ForwarderConfig) fillDefaults() {
	if c.Owner == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "messaging"
		}
		c.Owner = host + "/" + uuid.NewString()[:8]
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.ReadBehind == 0 {
		c.ReadBehind = 10 * time.Second
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = 30 * time.Second
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
}

func (c *ForwarderConfig) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("messaging forwarder: ForwarderConfig.Store is required")
	case c.Publisher == nil:
		return errors.New("messaging forwarder: ForwarderConfig.Publisher is required")
	case c.BatchSize < 1:
		return errors.New("messaging forwarder: BatchSize must be positive")
	case c.PollInterval < 0 || c.ReadBehind < 0 || c.RescanInterval < 0 || c.Backoff < 0 || c.MaxBackoff < 0:
		return errors.New("messaging forwarder: intervals must not be negative")
	case c.LeaseTTL < time.Second:
		return errors.New("messaging forwarder: LeaseTTL must be at least one second")
	}
	return nil
}

// CassandraForwarder publishes the events CassandraStore wrote to pending_events, then deletes
// them: the Cassandra counterpart of the platform outbox's forwarder.
//
// Rounds: a round handles its shards concurrently, each shard read, published and deleted in
// order. A round woken by a send of this process reads only the shards this process wrote to
// since the last round (and those whose last batch was full); at least every PollInterval, and
// after taking the lease or a failure, a round reads every shard, which is how events written
// by other processes are found.
//
// Guarantees:
//   - At least once: a row is deleted only after the bus accepted its message; a crash in
//     between publishes it again, with the same message UUID (the event id), which consumers
//     deduplicate on.
//   - Order: each shard is read in seq (message id) order and a failed publish is retried
//     before anything after it goes out, so the events of one conversation (one shard) that
//     are pending together are published in message order. Sends racing on one conversation
//     can land a little out of id order; an event that lands after a newer one of its shard was
//     published goes out next, so a consumer may see those two in landing order.
//   - One forwarder at a time: the one holding the lease row (a lightweight transaction with a
//     TTL, renewed every LeaseTTL/3). A holder that cannot renew for 2/3 of the TTL stops
//     forwarding before the lease can expire; around that moment two forwarders may publish
//     the same event (at least once, never lost). Others stand by and poll the lease.
//   - Message UUID, metadata (with the sending request's trace context and
//     events.PartitionKey = the conversation id) and payload are published as the store wrote
//     them.
//
// Tombstones: every published row is deleted, leaving a tombstone at the head of its shard.
// A round reads each shard from ReadBehind before the last seq it published (a clustering bound
// that skips the older tombstones) and only every RescanInterval from the start;
// pending_events has a short gc_grace_seconds, so compaction purges them within about an hour. A deletion that a failed replica missed can
// resurrect an event after that: it is published again, and deduplicated by its consumers.
//
// Metrics (instrumentation scope github.com/piazza-social/piazza/services/messaging/adapters):
// messaging.forwarder.forwarded and messaging.forwarder.publish_errors (counters, by topic),
// messaging.forwarder.leader (gauge: 1 while this forwarder holds the lease).
type CassandraForwarder struct {
	cfg     ForwarderConfig
	st      *CassandraStore
	log     *slog.Logger
	meter   metric.Meter
	metrics struct {
		forwarded     metric.Int64Counter
		publishErrors metric.Int64Counter
		leader        metric.Int64ObservableGauge
	}
	leader atomic.Bool
	// after is, per shard, the time of the newest event published: the next read starts
	// ReadBehind before it, skipping the tombstones of the older published ones.
	after [PendingShards]time.Time
}

type pendingKey struct{ seq, eventID string }

// NewCassandraForwarder validates cfg and fills its defaults. log may be nil.
func NewCassandraForwarder(cfg ForwarderConfig, log *slog.Logger) (*CassandraForwarder, error) {
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &CassandraForwarder{cfg: cfg, st: cfg.Store, log: log.With("component", "messaging_forwarder", "owner", cfg.Owner),
		meter: cfg.MeterProvider.Meter(instrumentationName)}
	var errs [3]error
	f.metrics.forwarded, errs[0] = f.meter.Int64Counter("messaging.forwarder.forwarded",
		metric.WithDescription("Pending events published to the bus."), metric.WithUnit("{event}"))
	f.metrics.publishErrors, errs[1] = f.meter.Int64Counter("messaging.forwarder.publish_errors",
		metric.WithDescription("Failed attempts to publish pending events; each retry counts."), metric.WithUnit("{error}"))
	f.metrics.leader, errs[2] = f.meter.Int64ObservableGauge("messaging.forwarder.leader",
		metric.WithDescription("1 while this forwarder holds the forwarding lease, else 0."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("messaging forwarder: create instruments: %w", err)
	}
	return f, nil
}

// Run forwards events until ctx is cancelled, then releases the lease and returns nil.
// Cassandra and bus failures are logged and retried with backoff; Run does not return because
// of them. Call Run once at a time per forwarder.
func (f *CassandraForwarder) Run(ctx context.Context) error {
	reg, err := f.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if f.leader.Load() {
			v = 1
		}
		o.ObserveInt64(f.metrics.leader, v)
		return nil
	}, f.metrics.leader)
	if err != nil {
		return fmt.Errorf("messaging forwarder: register metrics callback: %w", err)
	}
	defer func() { _ = reg.Unregister() }()

	standby := false
	for {
		renewed, err := f.acquire(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.log.WarnContext(ctx, "could not try the forwarding lease", "error", err)
		case !renewed.IsZero():
			standby = false
			f.log.InfoContext(ctx, "took the messaging forwarding lease")
			f.leader.Store(true)
			f.lead(ctx, renewed)
			f.leader.Store(false)
			if ctx.Err() != nil {
				f.release()
				return nil
			}
			continue
		case !standby:
			standby = true
			f.log.InfoContext(ctx, "another process forwards messaging events; standing by")
		}
		if !sleep(ctx, f.cfg.PollInterval) {
			return nil
		}
	}
}

// acquire tries to take the lease; it returns when it was taken, or the zero time.
func (f *CassandraForwarder) acquire(ctx context.Context) (time.Time, error) {
	now := time.Now()
	row := map[string]any{}
	applied, err := f.st.claim(`INSERT INTO forwarder_leases (name, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?`,
		leaseName, f.cfg.Owner, f.ttlSeconds()).MapScanCASContext(ctx, row)
	if err != nil {
		return time.Time{}, err
	}
	// A retried acquisition whose first attempt was applied finds its own name.
	if applied || row["owner"] == f.cfg.Owner {
		return now, nil
	}
	return time.Time{}, nil
}

// renew extends the lease; it reports false when another forwarder holds it (or it expired).
func (f *CassandraForwarder) renew(ctx context.Context) (bool, error) {
	row := map[string]any{}
	applied, err := f.st.claim(`UPDATE forwarder_leases USING TTL ? SET owner = ? WHERE name = ? IF owner = ?`,
		f.ttlSeconds(), f.cfg.Owner, leaseName, f.cfg.Owner).MapScanCASContext(ctx, row)
	return applied, err
}

// release gives the lease up, so that a standby takes over at once rather than after the TTL.
func (f *CassandraForwarder) release() {
	ctx, cancel := context.WithTimeout(context.Background(), forwarderDeleteTimeout)
	defer cancel()
	if _, err := f.st.claim(`DELETE FROM forwarder_leases WHERE name = ? IF owner = ?`, leaseName, f.cfg.Owner).
		MapScanCAS(map[string]any{}); err != nil {
		f.log.WarnContext(ctx, "could not release the forwarding lease; it expires by itself", "error", err)
	}
}

func (f *CassandraForwarder) ttlSeconds() int {
	return int((f.cfg.LeaseTTL + time.Second - 1) / time.Second)
}

// lead forwards while the lease holds: it returns when ctx is cancelled or the lease is lost.
func (f *CassandraForwarder) lead(ctx context.Context, renewed time.Time) {
	poll := time.NewTimer(f.cfg.PollInterval)
	defer poll.Stop()
	// The first round reads every shard from its start.
	var lastFull, lastAll time.Time
	// shards is the set the next round reads besides the shards written since the last one.
	var shards uint32
	for failures := 0; ; {
		if since := time.Since(renewed); since >= f.cfg.LeaseTTL/3 {
			ok, err := f.renew(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err == nil && !ok:
				f.log.WarnContext(ctx, "lost the messaging forwarding lease")
				return
			case err == nil:
				renewed = time.Now()
			case since >= 2*f.cfg.LeaseTTL/3:
				f.log.WarnContext(ctx, "could not renew the forwarding lease in time; stepping down", "error", err)
				return
			default:
				f.log.WarnContext(ctx, "could not renew the forwarding lease; retrying", "error", err)
			}
		}
		now := time.Now()
		fromStart := now.Sub(lastFull) >= f.cfg.RescanInterval
		if fromStart {
			lastFull = now
		}
		if fromStart || now.Sub(lastAll) >= f.cfg.PollInterval {
			lastAll = now
			shards = allShards
		}
		// Taken before the reads: a send that lands after this point sets its shard again.
		shards |= f.st.takeWritten()
		full, err := f.round(ctx, shards, fromStart)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			f.log.WarnContext(ctx, "forwarding messaging events failed; retrying", "attempt", failures, "error", err)
			if !sleep(ctx, backoff(f.cfg.Backoff, f.cfg.MaxBackoff, failures)) {
				return
			}
			shards = allShards // the retry reads the shards taken for the failed round too
			continue
		}
		failures = 0
		shards = full
		if full != 0 {
			continue
		}
		poll.Reset(min(f.cfg.PollInterval, f.cfg.LeaseTTL/3))
		select {
		case <-ctx.Done():
			return
		case <-f.st.wake:
		case <-poll.C:
		}
	}
}

// allShards is the set of every shard.
const allShards = uint32(1)<<PendingShards - 1

// round forwards up to BatchSize events of each shard in the set shards, concurrently, from
// the start of each shard when fromStart is set. It returns the set of shards that had a full
// batch (more may be waiting there), and every shard's failure. A shard stops at its first
// failure, so nothing of a shard overtakes a failed event; the other shards go on, as the
// order holds within a shard only.
func (f *CassandraForwarder) round(ctx context.Context, shards uint32, fromStart bool) (full uint32, err error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for shard := range PendingShards {
		if shards&(1<<shard) == 0 {
			continue
		}
		wg.Go(func() {
			n, err := f.forwardShard(ctx, shard, fromStart)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if n == f.cfg.BatchSize {
				full |= 1 << shard
			}
		})
	}
	wg.Wait()
	return full, errors.Join(errs...)
}

type pendingRow struct {
	key   pendingKey
	topic string
	msg   *message.Message
}

// forwardShard publishes the next events of one shard in order and deletes those published.
// Rounds call it for different shards concurrently: it touches only its shard's state.
func (f *CassandraForwarder) forwardShard(ctx context.Context, shard int, fromStart bool) (int, error) {
	q := f.st.read(`SELECT seq, event_id, topic, payload, metadata FROM pending_events WHERE shard = ? LIMIT ?`, shard, f.cfg.BatchSize)
	if after := f.after[shard]; !fromStart && !after.IsZero() {
		q = f.st.read(`SELECT seq, event_id, topic, payload, metadata FROM pending_events
			WHERE shard = ? AND seq >= ? LIMIT ?`, shard, firstIDAt(after.Add(-f.cfg.ReadBehind)), f.cfg.BatchSize)
	}
	it := q.IterContext(ctx)
	var (
		rows    []pendingRow
		r       pendingRow
		payload []byte
		md      map[string]string
	)
	for it.Scan(&r.key.seq, &r.key.eventID, &r.topic, &payload, &md) {
		msg := message.NewMessage(r.key.eventID, payload)
		msg.Metadata = message.Metadata{}
		for k, v := range md {
			msg.Metadata.Set(k, v)
		}
		// A publisher that traces (Kafka) makes its span a child of the sending request's span.
		msg.SetContext(events.ContextFromMessage(context.WithoutCancel(ctx), msg, f.st.prop))
		rows = append(rows, pendingRow{key: r.key, topic: r.topic, msg: msg})
		payload, md = nil, nil
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("messaging forwarder: read shard %d: %w", shard, err)
	}
	var published []pendingKey
	var pubErr error
	// Consecutive events of one topic go out in one Publish call (one round of acks on Kafka).
	for start := 0; start < len(rows); {
		end := start + 1
		for end < len(rows) && rows[end].topic == rows[start].topic {
			end++
		}
		topic := rows[start].topic
		msgs := make([]*message.Message, 0, end-start)
		for _, r := range rows[start:end] {
			msgs = append(msgs, r.msg)
		}
		attrs := metric.WithAttributes(attribute.String("topic", topic))
		if err := f.cfg.Publisher.Publish(topic, msgs...); err != nil {
			f.metrics.publishErrors.Add(ctx, 1, attrs)
			pubErr = fmt.Errorf("messaging forwarder: publish %d events to %s: %w", len(msgs), topic, err)
			break
		}
		f.metrics.forwarded.Add(ctx, int64(len(msgs)), attrs)
		for _, r := range rows[start:end] {
			published = append(published, r.key)
		}
		start = end
	}
	if err := f.delete(ctx, shard, published); err != nil {
		return 0, err
	}
	for _, k := range published {
		if at, ok := domain.IDTime(k.seq); ok && at.After(f.after[shard]) {
			f.after[shard] = at
		}
	}
	return len(rows), pubErr
}

// delete removes published rows of one shard in one unlogged batch: one partition, so it is
// applied as one mutation.
func (f *CassandraForwarder) delete(ctx context.Context, shard int, keys []pendingKey) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forwarderDeleteTimeout)
	defer cancel()
	b := f.st.s.Batch(gocql.UnloggedBatch).Consistency(gocql.LocalQuorum)
	for _, k := range keys {
		b.Query(`DELETE FROM pending_events WHERE shard = ? AND seq = ? AND event_id = ?`, shard, k.seq, k.eventID)
	}
	if err := b.ExecContext(ctx); err != nil {
		return fmt.Errorf("messaging forwarder: delete %d published events of shard %d: %w", len(keys), shard, err)
	}
	return nil
}

// firstIDAt returns the smallest UUIDv7 of the millisecond of t: every id made at t or later
// sorts at or after it.
func firstIDAt(t time.Time) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], uint64(max(t.UnixMilli(), 0))<<16|0x7000)
	u[8] = 0x80
	return u.String()
}

// backoff is the pause after the given number of consecutive failures.
func backoff(first, most time.Duration, failures int) time.Duration {
	d := first
	for i := 1; i < failures && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// sleep waits d or until ctx is done; it reports whether the full d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
