// Package stream holds the gateway's Server-Sent Events streams (GET /v1/events): a per-instance
// [Hub] that receives the push batches addressed to this gateway instance and hands each
// delivery to the connections of its user, and the connections themselves.
//
// The design follows production SSE servers (centrifugo):
//
//   - One push subscription per instance and one reader goroutine. The reader never blocks: each
//     connection has a small bounded queue, and a connection whose queue is full is closed
//     ("slow_consumer") instead of slowing everybody else down. Connections are indexed by user
//     id in a sharded map, so a delivery costs one read-locked map lookup.
//   - One writer per connection at a time, and none while it is idle: queuing a frame (or
//     closing the stream) starts a writer goroutine unless one is at work, and the writer
//     takes everything queued, writes it with one flush, and returns once the queue is empty.
//     Over HTTP/1.1 the connection is taken out of net/http (hijacked) once the stream is
//     accepted: the hub writes the response's head and a chunked body itself (one chunk, one
//     system call per flush), and the sweep probes the socket (one non-blocking read) to
//     notice the client going away, where there is a socket to probe (else a small watcher
//     goroutine reads the connection); net/http's deep handler stack, its background reader
//     and its per-connection buffers are freed, and a stream holds a write buffer only while
//     it writes. An idle stream is its socket and its record, no goroutine. A writer that
//     wrote notifications parks for more until its stream is quiet for a sweep, so that a
//     busy stream does not start a goroutine per notification. Elsewhere (HTTP/2, a
//     writer that cannot hijack) the HTTP handler waits for the stream's end and the writers
//     write on net/http. Every write has a deadline; a failed or timed-out write closes the
//     connection.
//   - No per-connection timers: one sweep ticker per hub has idle connections send a heartbeat
//     and ends the connections whose access token expired or whose maximum lifetime (with
//     jitter, so reconnects spread out) is over; one presence ticker renews every connection's
//     presence entry.
//   - Ordered, gap-free delivery: every notification carries its per-user sequence number as
//     the SSE event id. A connection remembers the last sequence number it sent; a live
//     delivery at or below it is a duplicate and dropped, one above the next is a gap, filled
//     from the durable inbox (notification-service ListSince) before going on. A client that
//     reconnects with Last-Event-ID gets the notifications it missed from the inbox first; when
//     that is more than the replay limit it gets `event: resync` instead (fetch the inbox) and
//     continues live from the newest notification.
//
// Tracing: a push batch is handled in a consumer span ("deliver notifications"), a child of
// the span that published it, and each stream's write of live notifications is a span ("sse
// write", from the notification's arrival to the flush that sent it) in the same trace, which
// links the batch span of every notification it wrote: one event that fans out to many
// streams is linked from each of their writes, and a write that carries the notifications of
// several events is found from each of them. Only sampled batches make write spans.
//
// Frames: `retry: <ms>` first (a reconnection delay with jitter); `id: <seq>`, `event:
// notification`, `data: <realtimev1.Notification JSON>` per notification; `: ping` comments
// on idle streams; and the control events `resync` (data {"last_seq":n}, id n),
// `token_expired` and `reconnect`, after which the server closes the stream.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/api/realtimev1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/push"
)

// Inbox is notification-service's durable inbox, as far as streams read it;
// notificationv1.NotificationServiceClient is one.
type Inbox interface {
	ListSince(ctx context.Context, in *notificationv1.ListSinceRequest, opts ...grpc.CallOption) (*notificationv1.ListSinceResponse, error)
	UnreadCount(ctx context.Context, in *notificationv1.UnreadCountRequest, opts ...grpc.CallOption) (*notificationv1.UnreadCountResponse, error)
}

// Presence keeps the presence and routing entries of this instance's connections; every
// presence.Store is one.
type Presence interface {
	Register(ctx context.Context, c presence.Connection, ttl time.Duration) (first bool, err error)
	Refresh(ctx context.Context, c presence.Connection, ttl time.Duration) error
	Unregister(ctx context.Context, c presence.Connection) (last bool, err error)
}

// EventPublisher publishes domain events on the bus; *events.Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, topic string, envs ...events.Envelope) error
}

// Tuning holds the knobs of the streams. Zero fields take the defaults.
type Tuning struct {
	// QueueSize bounds each connection's outbound queue of live deliveries; a connection whose
	// queue is full when a delivery arrives is closed as a slow consumer. Default 32.
	QueueSize int
	// WriteTimeout bounds every write to a client; default 5s.
	WriteTimeout time.Duration
	// Heartbeat is the longest a stream stays silent: an idle stream gets a `: ping` comment,
	// so that proxies keep it open and clients notice a dead one. Default 25s.
	Heartbeat time.Duration
	// Sweep is the period of the hub's one ticker for heartbeats, token expiry, maximum
	// lifetimes and the probe of taken-over sockets: a stream ends at most Sweep after its
	// token expired or its client went away (one non-blocking read per stream and sweep).
	// Default 1s.
	Sweep time.Duration
	// PresenceTTL is the lifetime of a presence entry unless renewed; default 60s.
	PresenceTTL time.Duration
	// PresenceRefresh is how often every connection's presence entry is renewed; default 20s.
	// It must be well below PresenceTTL (else PresenceTTL/3 is used).
	PresenceRefresh time.Duration
	// PresenceConcurrency bounds the presence renewals in flight; default 16.
	PresenceConcurrency int
	// CallTimeout bounds each call to the inbox and the presence store; default 5s.
	CallTimeout time.Duration
	// MaxLifetime is the longest a stream lives before it gets `event: reconnect` and is
	// closed, so that long-lived streams rebalance across instances; default 1h, and each stream
	// draws its own within ±LifetimeJitter of it.
	MaxLifetime time.Duration
	// LifetimeJitter is the relative spread of MaxLifetime, in [0, 0.5]; default 0.1.
	LifetimeJitter float64
	// RetryMin and RetryJitter make each stream's `retry:` hint: RetryMin plus a random part of
	// RetryJitter, so that the clients of a failed instance do not all come back at once.
	// Defaults 2s and 3s.
	RetryMin    time.Duration
	RetryJitter time.Duration
	// ReplayLimit is the most notifications one catch-up sends from the inbox; beyond it the
	// client gets `event: resync`. Default 1000.
	ReplayLimit int
	// DrainTimeout bounds the shutdown: closing the streams and publishing their last presence
	// events. Default 5s.
	DrainTimeout time.Duration
	// EventQueue bounds the presence events waiting to be published; events beyond it are
	// dropped (logged and counted). Default 4096.
	EventQueue int
	// EventAttempts is how often a presence event is tried before it is given up (logged and
	// counted); default 3, with a backoff from EventBackoff (default 100ms), times 4 each time.
	EventAttempts int
	EventBackoff  time.Duration
}

func (t *Tuning) setDefaults(log *slog.Logger) {
	setDefault(&t.QueueSize, 32)
	setDefault(&t.WriteTimeout, 5*time.Second)
	setDefault(&t.Heartbeat, 25*time.Second)
	setDefault(&t.Sweep, time.Second)
	setDefault(&t.PresenceTTL, 60*time.Second)
	setDefault(&t.PresenceRefresh, 20*time.Second)
	setDefault(&t.PresenceConcurrency, 16)
	setDefault(&t.CallTimeout, 5*time.Second)
	setDefault(&t.MaxLifetime, time.Hour)
	setDefault(&t.RetryMin, 2*time.Second)
	setDefault(&t.RetryJitter, 3*time.Second)
	setDefault(&t.ReplayLimit, 1000)
	setDefault(&t.DrainTimeout, 5*time.Second)
	setDefault(&t.EventQueue, 4096)
	setDefault(&t.EventAttempts, 3)
	setDefault(&t.EventBackoff, 100*time.Millisecond)
	if t.LifetimeJitter <= 0 || t.LifetimeJitter > 0.5 {
		t.LifetimeJitter = 0.1
	}
	if t.Sweep >= t.Heartbeat {
		t.Sweep = t.Heartbeat / 5
	}
	if t.PresenceRefresh*2 > t.PresenceTTL {
		log.LogAttrs(context.Background(), slog.LevelWarn, "presence refresh too slow for its TTL; using a third of the TTL",
			slog.Duration("refresh", t.PresenceRefresh), slog.Duration("ttl", t.PresenceTTL))
		t.PresenceRefresh = t.PresenceTTL / 3
	}
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Config configures a [Hub].
type Config struct {
	// InstanceID names this gateway instance: the hub subscribes to its push channel and
	// registers its connections' presence under it. Required; unique per running instance.
	InstanceID string
	// Push delivers the batches addressed to InstanceID. Required.
	Push push.Subscriber
	// Inbox is notification-service. Required.
	Inbox Inbox
	// Presence keeps the connections' presence entries. Required.
	Presence Presence
	// Events publishes presence.connected and presence.disconnected. Required.
	Events EventPublisher
	// Tuning: zero fields take the defaults.
	Tuning Tuning
	// Now is the clock of token expiry, lifetimes and heartbeats; default time.Now. Write
	// deadlines always use the real clock.
	Now func() time.Time

	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// Client is who opens a stream.
type Client struct {
	UserID string
	// ExpiresAt is when the client's access token expires: the stream gets `event:
	// token_expired` and ends then. Zero: never (the maximum lifetime still applies).
	ExpiresAt time.Time
	// Resume says the client sent a Last-Event-ID: it has every notification up to LastEventID
	// and wants the ones after it.
	Resume      bool
	LastEventID int64
}

// shardCount spreads the connection index over this many locks; a power of two.
const shardCount = 64

type shard struct {
	mu sync.RWMutex
	// users maps a user id to that user's connections. The slices are never modified in
	// place (copy on write), so a reader may use one after releasing the lock.
	users map[string][]*conn
}

// Hub is one gateway instance's set of streams. Serve streams to one client; Run receives the
// instance's push batches and keeps the streams' heartbeats, lifetimes and presence.
//
// An idle stream costs the hub a few hundred bytes (its record and a context; its queue holds
// no array while empty); taken out of net/http, with its socket, it costs the process about
// 2 KB of heap and stacks in all, the client's end of the socket included, and no goroutine
// (BenchmarkIdleStreamMemory; 9-10 KB with a writer and a watcher goroutine per stream).
type Hub struct {
	cfg    Config
	t      Tuning
	log    *slog.Logger
	now    func() time.Time
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	m      metrics

	seed   maphash.Seed
	shards [shardCount]shard
	ping   []byte // the heartbeat's frame

	started  atomic.Bool
	running  atomic.Bool // subscribed, and not yet shutting down
	stopping atomic.Bool // shutting down: no new connections
	ready    chan struct{}
	conns    sync.WaitGroup // one per indexed connection

	evQueues []chan events.Envelope
}

// eventWorkers is the number of presence-event publishers; events of one user always go
// through the same one, so that a connection's connected event precedes its disconnected.
const eventWorkers = 4

// NewHub validates cfg and fills its defaults. The hub accepts streams once Run has subscribed.
func NewHub(cfg Config, log *slog.Logger) (*Hub, error) {
	switch {
	case cfg.InstanceID == "":
		return nil, errors.New("stream: Config.InstanceID is required")
	case cfg.Push == nil:
		return nil, errors.New("stream: Config.Push is required")
	case cfg.Inbox == nil:
		return nil, errors.New("stream: Config.Inbox is required")
	case cfg.Presence == nil:
		return nil, errors.New("stream: Config.Presence is required")
	case cfg.Events == nil:
		return nil, errors.New("stream: Config.Events is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Tuning.setDefaults(log)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	h := &Hub{
		cfg:    cfg,
		t:      cfg.Tuning,
		log:    log,
		now:    cfg.Now,
		tracer: cfg.TracerProvider.Tracer(instrumentationName),
		prop:   cfg.Propagator,
		m:      newMetrics(cfg.MeterProvider, log),
		seed:   maphash.MakeSeed(),
		ping:   []byte(": ping\n\n"),
		ready:  make(chan struct{}),
	}
	for i := range h.shards {
		h.shards[i].users = map[string][]*conn{}
	}
	h.evQueues = make([]chan events.Envelope, eventWorkers)
	for i := range h.evQueues {
		h.evQueues[i] = make(chan events.Envelope, max(h.t.EventQueue/eventWorkers, 1))
	}
	return h, nil
}

// Ready is closed once Run has subscribed to the instance's push channel: from then on a
// stream misses no delivery.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run subscribes to the instance's push channel and delivers its batches until ctx is
// cancelled; it also runs the heartbeat and lifetime sweep, the presence renewals and the
// presence-event publishers. On cancellation it closes every stream (`event: reconnect`),
// waits for their handlers to finish and their presence events to be published (at most
// DrainTimeout), and returns nil. It returns an error if the subscription fails or ends while
// ctx is live. A Hub runs once.
func (h *Hub) Run(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("stream: Hub already run")
	}
	msgs, err := h.cfg.Push.Subscribe(ctx, h.cfg.InstanceID)
	if err != nil {
		h.stopping.Store(true)
		return fmt.Errorf("stream: subscribe to the push channel of instance %s: %w", h.cfg.InstanceID, err)
	}

	// The publishers outlive ctx a little: the streams closed by the shutdown still report
	// their disconnection.
	evCtx, evCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer evCancel()
	evStop := make(chan struct{})
	var publishers sync.WaitGroup
	for _, q := range h.evQueues {
		publishers.Go(func() { h.publishEvents(evCtx, q, evStop) })
	}
	tickCtx, tickCancel := context.WithCancel(ctx)
	var tickers sync.WaitGroup
	tickers.Go(func() { h.sweep(tickCtx) })
	tickers.Go(func() { h.refreshPresence(tickCtx) })

	h.running.Store(true)
	close(h.ready)
	h.log.InfoContext(ctx, "event streams ready", slog.String("instance_id", h.cfg.InstanceID))
	runErr := h.read(ctx, msgs)

	h.running.Store(false)
	tickCancel()
	tickers.Wait()
	deadline := time.Now().Add(h.t.DrainTimeout)
	n := h.closeAll(reasonShutdown)
	h.log.InfoContext(ctx, "event streams draining", slog.Int("streams", n))
	if !waitUntil(&h.conns, deadline) {
		h.log.WarnContext(ctx, "event streams still open after the drain timeout")
	}
	close(evStop)
	if !waitUntil(&publishers, deadline) {
		evCancel()
		publishers.Wait()
	}
	return runErr
}

// waitUntil waits for wg until deadline; it reports whether wg finished.
func waitUntil(wg *sync.WaitGroup, deadline time.Time) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// read is the reader: it takes every message of the subscription and hands its deliveries to
// the connections' queues without ever blocking on one.
func (h *Hub) read(ctx context.Context, msgs <-chan []byte) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("stream: the push subscription of instance %s ended", h.cfg.InstanceID)
			}
			h.dispatch(ctx, msg)
		}
	}
}

func (h *Hub) dispatch(ctx context.Context, msg []byte) {
	var b realtimev1.Batch
	if err := json.Unmarshal(msg, &b); err != nil {
		h.m.malformed.Add(ctx, 1)
		h.log.LogAttrs(ctx, slog.LevelWarn, "malformed push batch dropped", slog.String("error", err.Error()), slog.Int("bytes", len(msg)))
		return
	}
	// The batch carries the trace of the notification handler that published it; each stream's
	// write of these notifications is a span of that trace too (see conn.endWrite).
	bctx := h.prop.Extract(ctx, propagation.MapCarrier{"traceparent": b.TraceParent, "tracestate": b.TraceState})
	bctx, span := h.tracer.Start(bctx, "deliver notifications", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.Int("piazza.deliveries", len(b.Deliveries))))
	defer span.End()
	var occurred int64
	if !b.OccurredAt.IsZero() {
		occurred = b.OccurredAt.UnixNano()
	}
	var sampled trace.SpanContext
	var queued time.Time
	if sc := span.SpanContext(); sc.IsSampled() {
		sampled, queued = sc, time.Now()
	}
	// A batch carries one event's notification to each of its recipients: the same but for
	// the sequence number, encoded once.
	var (
		prev *realtimev1.Notification
		rest []byte
	)
	for i := range b.Deliveries {
		d := &b.Deliveries[i]
		conns := h.lookup(d.UserID)
		if len(conns) == 0 {
			continue // gone since notification-service looked up the routes
		}
		if prev == nil || !sameButSeq(prev, &d.Notification) {
			var err error
			if rest, err = notificationRest(d.Notification); err != nil {
				prev = nil
				h.m.malformed.Add(bctx, 1)
				h.log.LogAttrs(bctx, slog.LevelWarn, "undeliverable notification dropped", slog.String("user_id", d.UserID), slog.String("error", err.Error()))
				continue
			}
			prev = &d.Notification
		}
		// The frame is only read: every connection of the user, and every recipient of the
		// same notification, shares its encoding.
		f := frame{seq: d.Notification.Seq, rest: rest, occurred: occurred, batch: sampled, queued: queued}
		for _, c := range conns {
			c.offer(bctx, f)
		}
	}
}

func (h *Hub) hash(s string) uint64 { return maphash.String(h.seed, s) }

func (h *Hub) shardOf(userID string) *shard { return &h.shards[h.hash(userID)%shardCount] }

func (h *Hub) lookup(userID string) []*conn {
	s := h.shardOf(userID)
	s.mu.RLock()
	conns := s.users[userID]
	s.mu.RUnlock()
	return conns
}

var errUnavailable = errs.New(errs.Unavailable, "The event stream is not available on this instance right now; retry shortly.")

// add indexes c, unless the hub is shutting down.
func (h *Hub) add(c *conn) error {
	s := h.shardOf(c.key.UserID)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the shard lock: closeAll sets stopping before it visits the shards, so a
	// connection is either refused here or closed there.
	if h.stopping.Load() {
		return errUnavailable
	}
	old := s.users[c.key.UserID]
	conns := make([]*conn, len(old), len(old)+1)
	copy(conns, old)
	s.users[c.key.UserID] = append(conns, c)
	h.conns.Add(1)
	return nil
}

func (h *Hub) remove(c *conn) {
	s := h.shardOf(c.key.UserID)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[c.key.UserID]
	conns := make([]*conn, 0, len(old))
	for _, o := range old {
		if o != c {
			conns = append(conns, o)
		}
	}
	if len(conns) == len(old) {
		return // not indexed
	}
	if len(conns) == 0 {
		delete(s.users, c.key.UserID)
	} else {
		s.users[c.key.UserID] = conns
	}
	h.conns.Done()
}

// snapshot appends every indexed connection to buf.
func (h *Hub) snapshot(buf []*conn) []*conn {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for _, conns := range s.users {
			buf = append(buf, conns...)
		}
		s.mu.RUnlock()
	}
	return buf
}

// closeAll stops accepting connections and closes every indexed one; it returns how many.
func (h *Hub) closeAll(r reason) int {
	h.stopping.Store(true)
	conns := h.snapshot(nil)
	for _, c := range conns {
		c.close(r, false)
	}
	return len(conns)
}

// sweep is the hub's one ticker for every connection: it ends the ones whose client went away
// (taken-over streams with a probe; the others notice it themselves), whose token expired or
// whose lifetime is over, and has the idle ones send a heartbeat.
func (h *Hub) sweep(ctx context.Context) {
	tick := time.NewTicker(h.t.Sweep)
	defer tick.Stop()
	// A stream that wrote nothing for Heartbeat-Sweep is pinged at this tick: none is silent
	// for longer than Heartbeat, and none is pinged more often than every Heartbeat-Sweep.
	idle := (h.t.Heartbeat - h.t.Sweep).Nanoseconds()
	// A writer parked after notifications returns once its stream wrote nothing for a
	// sweep: an idle stream has no goroutine for more than two sweeps.
	quiet := h.t.Sweep.Nanoseconds()
	var buf []*conn
	p := newProber()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := h.now().UnixNano()
		buf = h.snapshot(buf[:0])
		for _, c := range buf {
			if now-c.lastWrite.Load() >= quiet {
				c.retireWriter()
			}
			switch {
			case c.clientGone(p):
				c.close(reasonClientClosed, false)
			case c.expires != 0 && now >= c.expires:
				c.close(reasonTokenExpired, false)
			case now >= c.endOfLife:
				c.close(reasonMaxLifetime, false)
			case now-c.lastWrite.Load() >= idle:
				c.offerPing()
			}
		}
		clear(buf) // let closed connections be collected
	}
}

// Serve streams to cl over w until the stream ends: the client goes away, a write fails or
// times out, the client is too slow, its token expires, the stream's lifetime is over or the
// hub shuts down. It returns an error (to be written as a problem) only before the stream
// started: the hub is not running (unavailable), or the inbox could not be read. When the
// connection can be taken out of net/http (HTTP/1.1 and a writer that hijacks), Serve returns
// as soon as the stream started, and the stream goes on in goroutines of its own until it
// ends; Run's drain waits for those too.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, cl Client) error {
	if !h.running.Load() {
		return errUnavailable
	}
	flush := flusherOf(w)
	if flush == nil {
		return errs.Wrap(errors.New("stream: the response writer cannot flush"), errs.Internal, "Streaming is not supported here.")
	}
	// The stream's context keeps only the request's trace (for logs and the inbox calls), not
	// the request: a stream taken out of net/http must not keep its buffers reachable. The
	// calls made before the stream starts use the request's context, so that the stream's
	// holds no children (and no Done channel) for them.
	ctx, cancel := context.WithCancelCause(trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(r.Context())))
	now := h.now()
	c := &conn{
		hub:       h,
		key:       presence.Connection{UserID: cl.UserID, ConnectionID: uuid.NewString(), InstanceID: h.cfg.InstanceID},
		ctx:       ctx,
		cancel:    cancel,
		endOfLife: now.Add(h.lifetime()).UnixNano(),
		// Serve is the writer until the stream starts: nothing starts another before.
		writing: true,
	}
	if !cl.ExpiresAt.IsZero() {
		c.expires = cl.ExpiresAt.UnixNano()
	}
	c.lastWrite.Store(now.UnixNano())
	// Until the stream is taken over, the request's cancellation (the client went away) ends
	// it.
	stop := context.AfterFunc(r.Context(), func() { c.close(reasonClientClosed, false) })

	// Indexed first, so that live deliveries queue from now on; then present, so that
	// notification-service routes to this instance; then the inbox is read. A notification
	// stored after that read is routed here (its routing looks at presence after storing it);
	// one stored before it is in what was read.
	if err := h.add(c); err != nil {
		stop()
		cancel(nil)
		return err
	}
	rctx := r.Context()
	h.register(rctx, c)
	uc, err := h.unreadCount(rctx, cl.UserID)
	if err != nil {
		stop()
		cancel(nil)
		h.remove(c)
		h.unregister(ctx, c)
		return err
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if r.ProtoMajor == 1 {
		hdr.Set("Connection", "keep-alive") // connection-specific headers are forbidden in HTTP/2
	}
	if raw := h.takeOver(w, r); raw != nil {
		// The connection is the stream's alone: net/http's goroutine, buffers and request
		// are freed when this handler returns. The stream goes on in writers started when
		// there is something to write; the sweep's probe of its socket (or a watcher, where
		// there is no socket to probe) notices the client going away.
		stop()
		c.bindRaw(raw)
		h.opened(c, now)
		if rc := rawConnOf(raw); rc != nil {
			c.probe.Store(rc)
		} else {
			go c.watch(raw)
		}
		go func() {
			c.start(cl, uc.GetLastSeq())
			c.work()
		}()
		return nil
	}
	defer stop()
	c.done = make(chan struct{})
	w.WriteHeader(http.StatusOK)
	c.bind(w, http.NewResponseController(w), flush)
	h.opened(c, now)
	c.start(cl, uc.GetLastSeq())
	c.work()
	// The stream's writers write to w until it ends; w must not outlive this handler.
	<-c.done
	return nil
}

// takeOver takes an HTTP/1.1 connection out of net/http (hijacks it) and writes the
// response's head itself: status 200, the headers of w, and a chunked body, which the stream
// then writes chunk by chunk. It returns nil, with nothing written, when the connection
// cannot be taken (HTTP/2, a request with a body, a writer that cannot hijack): the stream
// then runs on net/http. An idle stream on net/http costs its goroutine's deep stack, a
// second goroutine (the background reader) and about 10 KB of buffers; taken over, no
// goroutine and no buffer.
func (h *Hub) takeOver(w http.ResponseWriter, r *http.Request) net.Conn {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return nil
	}
	raw, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	hdr := w.Header()
	if _, ok := hdr["Date"]; !ok {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	hdr.Set("Transfer-Encoding", "chunked")
	// brw's writer is a fresh one of net/http's for the hijacked connection: the head is
	// written through it once, then it is dropped with the reader.
	_ = raw.SetWriteDeadline(time.Now().Add(h.t.WriteTimeout))
	_, _ = brw.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		// Too late for net/http; the stream's first write fails the same way and ends it.
		_ = raw.SetWriteDeadline(time.Now())
	}
	return raw
}

// opened counts a stream that started and publishes its connection.
func (h *Hub) opened(c *conn, at time.Time) {
	h.m.open.Add(c.ctx, 1)
	h.m.connects.Add(c.ctx, 1)
	h.publishPresence(c.ctx, c, eventsv1.PresenceConnected, at)
}

// finish forgets a stream that ended for reason r0.
func (h *Hub) finish(c *conn, r0 reason) {
	c.unbind()
	c.cancel(r0)
	ctx := c.ctx
	h.unregister(ctx, c)
	h.publishPresence(ctx, c, eventsv1.PresenceDisconnected, h.now())
	h.m.open.Add(ctx, -1)
	h.m.disconnects.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", string(r0))))
	h.log.LogAttrs(ctx, slog.LevelDebug, "event stream closed", slog.String("user_id", c.key.UserID),
		slog.String("connection_id", c.key.ConnectionID), slog.String("reason", string(r0)))
	// Last: the drain waits for the indexed streams, and must not stop the presence events'
	// publishers before this one's disconnection is queued. Until then, a closed stream in the
	// index ignores what it is offered.
	h.remove(c)
}

// lifetime draws a stream's maximum lifetime: MaxLifetime ± LifetimeJitter.
func (h *Hub) lifetime() time.Duration {
	j := h.t.LifetimeJitter
	return time.Duration(float64(h.t.MaxLifetime) * (1 - j + 2*j*rand.Float64()))
}

// retryHint draws a stream's reconnection delay in milliseconds.
func (h *Hub) retryHint() int64 {
	d := h.t.RetryMin
	if h.t.RetryJitter > 0 {
		d += rand.N(h.t.RetryJitter)
	}
	return d.Milliseconds()
}

func (h *Hub) unreadCount(ctx context.Context, userID string) (*notificationv1.UnreadCountResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, h.t.CallTimeout)
	defer cancel()
	return h.cfg.Inbox.UnreadCount(ctx, &notificationv1.UnreadCountRequest{UserId: userID})
}

func (h *Hub) listSince(ctx context.Context, userID string, after int64, limit int) (*notificationv1.ListSinceResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, h.t.CallTimeout)
	defer cancel()
	return h.cfg.Inbox.ListSince(ctx, &notificationv1.ListSinceRequest{UserId: userID, AfterSeq: after, Limit: int32(limit)})
}
