package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/piazza-social/piazza/platform/events/outbox"

// leaderLockKey is the PostgreSQL session advisory lock ("piazzaob" in ASCII) held by the one
// forwarder of a database that may forward.
const leaderLockKey int64 = 0x7069617a7a616f62

// deleteTimeout bounds the delete that follows a successful publish. It runs even when Run's
// context was cancelled meanwhile: skipping it would publish those events again next time.
const deleteTimeout = 10 * time.Second

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// Outbox whose events are forwarded: its database, and its Kick to wake up. Required.
	Outbox *Outbox
	// Publisher receives the events, usually the process's events.Bus. Required.
	Publisher message.Publisher
	// BatchSize is how many rows are read and published per round. Default 100.
	BatchSize int
	// PollInterval is how often the table is read without a Kick (rows committed by another
	// replica or before a restart), and how often a standby tries to take the forwarding
	// lock on PostgreSQL. Default 1 s.
	PollInterval time.Duration
	// Backoff is the pause after the first failed round (publish or database error); it
	// doubles with each further failure up to MaxBackoff. Default 100 ms.
	Backoff time.Duration
	// MaxBackoff caps the pause between failed rounds. Default 10 s.
	MaxBackoff time.Duration
	// MeterProvider makes the forwarder's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the producer span of each forwarded event; nil means
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

func (c *ForwarderConfig) fillDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
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
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

func (c *ForwarderConfig) validate() error {
	switch {
	case c.Outbox == nil:
		return errors.New("outbox: ForwarderConfig.Outbox is required")
	case c.Publisher == nil:
		return errors.New("outbox: ForwarderConfig.Publisher is required")
	case c.BatchSize < 0:
		return errors.New("outbox: BatchSize must not be negative")
	case c.PollInterval < 0:
		return errors.New("outbox: PollInterval must not be negative")
	case c.Backoff < 0 || c.MaxBackoff < 0:
		return errors.New("outbox: Backoff and MaxBackoff must not be negative")
	}
	return nil
}

// Forwarder publishes the outbox's events to the bus and deletes them once published.
//
// On PostgreSQL only the forwarder holding the database's session advisory lock forwards;
// it holds the lock on a dedicated connection, through which it also reads and deletes, so
// it never touches the table without the lock. The others (replicas of the service) try to
// take the lock every PollInterval. If the lock's connection fails, the forwarder stops
// forwarding, drops the connection (releasing the lock if the server still held it) and
// competes for the lock again. So events are forwarded by one process at a time, in order,
// and not published twice by two replicas — except around a lost connection: the server
// may release the lock while its old holder is still publishing a batch it read, which the
// new holder then publishes again (at least once, never lost).
//
// While it leads, a forwarder keeps one connection of the database's pool for itself.
//
// Tracing: each publish of an event is a producer span "send <topic>", a child of the span
// that was current when the event was added (the request that caused it), and the message
// goes out carrying the producer span's context instead, so that the consumer's span is a
// child of the send, which is a child of the request: one trace from the request to every
// handler. A retried publish is a new producer span under the same request span.
//
// Metrics (instrumentation scope github.com/piazza-social/piazza/platform/events/outbox):
// outbox.forwarded (counter, by topic), outbox.publish_errors (counter, by topic),
// outbox.backlog (gauge: rows pending, counted at collection time, so every replica reports
// the same number) and outbox.leader (gauge: 1 while this forwarder may forward).
type Forwarder struct {
	cfg     ForwarderConfig
	ob      *Outbox
	db      *database.DB
	log     *slog.Logger
	meter   metric.Meter
	tracer  trace.Tracer
	metrics forwarderMetrics
	leader  atomic.Bool
}

type forwarderMetrics struct {
	forwarded     metric.Int64Counter
	publishErrors metric.Int64Counter
	backlog       metric.Int64ObservableGauge
	leader        metric.Int64ObservableGauge
}

// NewForwarder validates cfg and fills its defaults. log may be nil.
func NewForwarder(cfg ForwarderConfig, log *slog.Logger) (*Forwarder, error) {
	cfg.fillDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{
		cfg: cfg, ob: cfg.Outbox, db: cfg.Outbox.db,
		log:    log.With("component", "outbox_forwarder"),
		meter:  cfg.MeterProvider.Meter(instrumentationName),
		tracer: cfg.TracerProvider.Tracer(instrumentationName),
	}
	var errs [4]error
	f.metrics.forwarded, errs[0] = f.meter.Int64Counter("outbox.forwarded",
		metric.WithDescription("Outbox events published to the bus."), metric.WithUnit("{event}"))
	f.metrics.publishErrors, errs[1] = f.meter.Int64Counter("outbox.publish_errors",
		metric.WithDescription("Failed attempts to publish outbox events; each retry counts."), metric.WithUnit("{error}"))
	f.metrics.backlog, errs[2] = f.meter.Int64ObservableGauge("outbox.backlog",
		metric.WithDescription("Outbox events waiting to be published."), metric.WithUnit("{event}"))
	f.metrics.leader, errs[3] = f.meter.Int64ObservableGauge("outbox.leader",
		metric.WithDescription("1 while this forwarder holds the forwarding lock of its database, else 0."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("outbox: create instruments: %w", err)
	}
	return f, nil
}

// querier is what a forwarding round needs: the pool on SQLite, the lock's connection on
// PostgreSQL.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Run forwards events until ctx is cancelled, then returns nil. A round in progress finishes
// its publish and delete first. Database and bus failures are logged and retried with
// backoff; Run does not return because of them. Give each Outbox one Forwarder and call Run
// once at a time: a Kick wakes a single waiter.
func (f *Forwarder) Run(ctx context.Context) error {
	reg, err := f.meter.RegisterCallback(f.observe, f.metrics.backlog, f.metrics.leader)
	if err != nil {
		return fmt.Errorf("outbox: register metrics callback: %w", err)
	}
	defer func() { _ = reg.Unregister() }()

	if f.db.Dialect() != database.Postgres {
		f.leader.Store(true)
		defer f.leader.Store(false)
		_ = f.forward(ctx, f.db.SQL())
		return nil
	}
	for failures := 0; ; {
		conn := f.acquire(ctx)
		if conn == nil {
			return nil
		}
		f.leader.Store(true)
		f.log.InfoContext(ctx, "took the outbox forwarding lock")
		led := time.Now()
		err := f.forward(ctx, conn)
		f.leader.Store(false)
		discard(conn)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(led) > f.cfg.MaxBackoff {
			failures = 0 // a fresh incident, not a connection failing over and over
		}
		failures++
		f.log.WarnContext(ctx, "gave up the outbox forwarding lock after a database error", "error", err)
		if !sleep(ctx, f.backoff(failures)) {
			return nil
		}
	}
}

// acquire returns a connection holding the forwarding lock, or nil once ctx is done.
func (f *Forwarder) acquire(ctx context.Context) *sql.Conn {
	standby := false
	for {
		conn, err := f.tryLock(ctx)
		switch {
		case conn != nil:
			return conn
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.log.WarnContext(ctx, "could not try the outbox forwarding lock", "error", err)
		case !standby:
			standby = true
			f.log.InfoContext(ctx, "another process forwards the outbox; standing by")
		}
		if !sleep(ctx, f.cfg.PollInterval) {
			return nil
		}
	}
}

func (f *Forwarder) tryLock(ctx context.Context) (*sql.Conn, error) {
	conn, err := f.db.SQL().Conn(ctx)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey).Scan(&locked); err != nil {
		discard(conn)
		return nil, err
	}
	if !locked {
		_ = conn.Close()
		return nil, nil
	}
	return conn, nil
}

// discard closes conn's physical connection instead of returning it to the pool, so that a
// session lock it may hold dies with it rather than staying with a pooled connection.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// forward runs rounds on q until ctx is cancelled (it returns nil) or, when q is the lock's
// connection, until a database error (returned: the lock may be gone). Publish errors, and
// database errors on SQLite, are retried here with backoff.
func (f *Forwarder) forward(ctx context.Context, q querier) error {
	_, onLockConn := q.(*sql.Conn)
	poll := time.NewTimer(f.cfg.PollInterval)
	defer poll.Stop()
	for failures := 0; ; {
		n, pubErr, dbErr := f.round(ctx, q)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case dbErr != nil && onLockConn:
			return dbErr
		case dbErr != nil:
			failures++
			f.log.WarnContext(ctx, "reading or deleting outbox events failed; retrying", "attempt", failures, "error", dbErr)
		case pubErr != nil:
			failures++
			f.log.WarnContext(ctx, "publishing outbox events failed; retrying", "attempt", failures, "error", pubErr)
		default:
			failures = 0
		}
		if failures > 0 {
			if !sleep(ctx, f.backoff(failures)) {
				return nil
			}
			continue
		}
		if n == f.cfg.BatchSize {
			continue // a full batch: more may be waiting
		}
		poll.Reset(f.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-f.ob.wake:
		case <-poll.C:
		}
	}
}

type outboxRow struct {
	id    int64
	topic string
	msg   *message.Message
}

// round publishes the oldest BatchSize rows in id order and deletes those that were
// published. It stops at the first publish failure, so nothing newer overtakes a failed row.
// It returns how many rows it read, the publish failure and the database failure, if any.
func (f *Forwarder) round(ctx context.Context, q querier) (n int, pubErr, dbErr error) {
	rows, err := f.read(ctx, q)
	if err != nil || len(rows) == 0 {
		return 0, nil, err
	}
	var published []int64
	// Consecutive rows of one topic go out in one Publish call (one transaction on the SQLite
	// bus, one round of acks on Kafka).
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
		spans := f.startSends(topic, msgs)
		if err := f.cfg.Publisher.Publish(topic, msgs...); err != nil {
			f.metrics.publishErrors.Add(ctx, 1, attrs)
			pubErr = fmt.Errorf("outbox: publish %d events to %s: %w", len(msgs), topic, err)
			endSends(spans, pubErr)
			break
		}
		endSends(spans, nil)
		f.metrics.forwarded.Add(ctx, int64(len(msgs)), attrs)
		for _, r := range rows[start:end] {
			published = append(published, r.id)
		}
		start = end
	}
	return len(rows), pubErr, f.delete(ctx, q, published)
}

// startSends starts the producer span of each message, as a child of the trace context the
// message was stored with, and puts the span's context into the message (its metadata, which
// the bus turns into Kafka headers, and its Go context, which a tracing publisher reads) in
// place of the stored one. The stored row keeps the request's context, so a publish that fails
// and is retried starts new sends under the same request span.
func (f *Forwarder) startSends(topic string, msgs []*message.Message) []trace.Span {
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		ctx, span := f.tracer.Start(msg.Context(), "send "+topic,
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String("piazza.event.type", msg.Metadata.Get(events.MetadataEventType)),
			))
		if span.SpanContext().IsValid() {
			events.InjectContext(ctx, msg, f.ob.prop)
			msg.SetContext(ctx)
		}
		spans[i] = span
	}
	return spans
}

// endSends ends the producer spans of one Publish call, marking them failed with err.
func endSends(spans []trace.Span, err error) {
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

func (f *Forwarder) read(ctx context.Context, q querier) ([]outboxRow, error) {
	rs, err := q.QueryContext(ctx,
		`SELECT id, topic, message_uuid, metadata, payload FROM outbox_messages ORDER BY id LIMIT $1`, f.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: read events: %w", err)
	}
	defer rs.Close()
	var out []outboxRow
	for rs.Next() {
		var (
			r        outboxRow
			uuid, md string
			payload  []byte
		)
		if err := rs.Scan(&r.id, &r.topic, &uuid, &md, &payload); err != nil {
			return nil, fmt.Errorf("outbox: read events: %w", err)
		}
		r.msg = message.NewMessage(uuid, payload)
		if err := json.Unmarshal([]byte(md), &r.msg.Metadata); err != nil {
			// Add wrote valid JSON; should the row have been damaged, the event still goes out
			// (without trace context) rather than block every later one.
			f.log.ErrorContext(ctx, "outbox event has unreadable metadata; publishing it without",
				"id", r.id, "message_uuid", uuid, "error", err)
			r.msg.Metadata = message.Metadata{}
		}
		// The request's trace context, parent of the producer span (startSends).
		r.msg.SetContext(events.ContextFromMessage(context.WithoutCancel(ctx), r.msg, f.ob.prop))
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read events: %w", err)
	}
	return out, nil
}

// delete removes the rows with the given ids. It names them one by one rather than a range:
// on PostgreSQL a row with an id inside the range may have committed after the read and not
// been published yet.
func (f *Forwarder) delete(ctx context.Context, q querier, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	var b strings.Builder
	args := make([]any, len(ids))
	b.WriteString(`DELETE FROM outbox_messages WHERE id IN (`)
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
		args[i] = id
	}
	b.WriteString(")")
	if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("outbox: delete %d published events: %w", len(ids), err)
	}
	return nil
}

func (f *Forwarder) observe(ctx context.Context, o metric.Observer) error {
	var leader int64
	if f.leader.Load() {
		leader = 1
	}
	o.ObserveInt64(f.metrics.leader, leader)
	n, err := f.ob.Pending(ctx)
	if err != nil {
		return err
	}
	o.ObserveInt64(f.metrics.backlog, n)
	return nil
}

// backoff is the pause after the given number of consecutive failures.
func (f *Forwarder) backoff(failures int) time.Duration {
	d := f.cfg.Backoff
	for i := 1; i < failures && d < f.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, f.cfg.MaxBackoff)
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
