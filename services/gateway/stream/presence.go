package stream

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
)

// Presence of the streams: each connection has a presence entry, registered when it opens,
// renewed by the hub's presence ticker and removed when it closes; the opening and closing are
// published as presence events. Presence failures never fail a stream: a connection whose
// registration failed is registered again by its next renewal, and an entry whose removal
// failed expires by its TTL. They are logged and counted.

// producer names the gateway as the producer of presence events.
const producer = "gateway"

func (h *Hub) register(ctx context.Context, c *conn) {
	ctx, cancel := context.WithTimeout(ctx, h.t.CallTimeout)
	defer cancel()
	if _, err := h.cfg.Presence.Register(ctx, c.key, h.t.PresenceTTL); err != nil {
		h.presenceFailed(ctx, "register", 1, err)
	}
}

// unregister removes c's presence entry; it runs when the stream ends, so it does not heed
// the stream's (cancelled) context.
func (h *Hub) unregister(ctx context.Context, c *conn) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.gone = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.t.CallTimeout)
	defer cancel()
	if _, err := h.cfg.Presence.Unregister(ctx, c.key); err != nil {
		h.presenceFailed(ctx, "unregister", 1, err)
	}
}

func (h *Hub) presenceFailed(ctx context.Context, op string, n int64, err error) {
	h.m.presenceErrors.Add(ctx, n, metric.WithAttributes(attribute.String("op", op)))
	h.log.LogAttrs(ctx, slog.LevelWarn, "presence "+op+" failed", slog.Int64("connections", n), slog.String("error", err.Error()))
}

// refreshPresence is the hub's one presence ticker: every PresenceRefresh it renews the entry
// of every connection, a bounded number at a time.
func (h *Hub) refreshPresence(ctx context.Context) {
	tick := time.NewTicker(h.t.PresenceRefresh)
	defer tick.Stop()
	var buf []*conn
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		buf = h.snapshot(buf[:0])
		var (
			g       errgroup.Group
			failed  atomic.Int64
			lastErr atomic.Value
		)
		g.SetLimit(h.t.PresenceConcurrency)
		for _, c := range buf {
			g.Go(func() error {
				if err := h.refresh(ctx, c); err != nil {
					failed.Add(1)
					lastErr.Store(err)
				}
				return nil
			})
		}
		_ = g.Wait()
		if n := failed.Load(); n > 0 {
			// One line per round, not one per connection.
			h.presenceFailed(ctx, "refresh", n, lastErr.Load().(error))
		}
		clear(buf)
	}
}

func (h *Hub) refresh(ctx context.Context, c *conn) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.gone {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.t.CallTimeout)
	defer cancel()
	return h.cfg.Presence.Refresh(ctx, c.key, h.t.PresenceTTL)
}

// publishPresence queues a presence event for publication; it never blocks the stream. An
// event that does not fit in the queue is dropped, logged and counted.
func (h *Hub) publishPresence(ctx context.Context, c *conn, eventType string, at time.Time) {
	env, err := events.New(eventType, c.key.UserID, producer, eventsv1.PresencePayload{
		UserID:       c.key.UserID,
		ConnectionID: c.key.ConnectionID,
		InstanceID:   c.key.InstanceID,
		At:           at.UTC(),
	})
	if err != nil {
		h.eventsLost(ctx, 1, "encode", err)
		return
	}
	// One queue per user: the user's events are published in order.
	q := h.evQueues[h.hash(c.key.UserID)%uint64(len(h.evQueues))]
	select {
	case q <- env:
	default:
		h.eventsLost(ctx, 1, "queue_full", nil)
	}
}

func (h *Hub) eventsLost(ctx context.Context, n int, why string, err error) {
	h.m.eventFailures.Add(ctx, int64(n), metric.WithAttributes(attribute.String("why", why)))
	attrs := []slog.Attr{slog.Int("events", n), slog.String("why", why), slog.String("topic", eventsv1.TopicPresence)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(ctx, slog.LevelError, "presence events not published", attrs...)
}

// eventBatch bounds the events one Publish call carries.
const eventBatch = 64

// publishEvents publishes the events of one queue, in order, a batch at a time, until stop is
// closed; it then publishes what is left and returns.
func (h *Hub) publishEvents(ctx context.Context, q chan events.Envelope, stop <-chan struct{}) {
	batch := make([]events.Envelope, 0, eventBatch)
	for {
		select {
		case env := <-q:
			h.publishBatch(ctx, fill(q, append(batch[:0], env)))
		case <-stop:
			for {
				if batch = fill(q, batch[:0]); len(batch) == 0 {
					return
				}
				h.publishBatch(ctx, batch)
			}
		}
	}
}

// fill appends what q holds to batch, up to eventBatch events, without waiting.
func fill(q chan events.Envelope, batch []events.Envelope) []events.Envelope {
	for len(batch) < eventBatch {
		select {
		case env := <-q:
			batch = append(batch, env)
		default:
			return batch
		}
	}
	return batch
}

// publishBatch publishes with bounded retries. Publish stops at the first failure, so a retry
// may publish the batch's first events again: consumers deduplicate on the event id.
func (h *Hub) publishBatch(ctx context.Context, batch []events.Envelope) {
	backoff := h.t.EventBackoff
	for attempt := 1; ; attempt++ {
		err := h.cfg.Events.Publish(ctx, eventsv1.TopicPresence, batch...)
		if err == nil {
			return
		}
		if attempt >= h.t.EventAttempts || ctx.Err() != nil {
			h.eventsLost(ctx, len(batch), "publish", err)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff *= 4
	}
}
