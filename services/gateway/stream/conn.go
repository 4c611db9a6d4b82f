package stream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/presence"
)

// reason is why a stream ended; it is the cause its context is cancelled with, and the
// "reason" attribute of the disconnect metric.
type reason string

func (r reason) Error() string { return "stream closed: " + string(r) }

const (
	reasonClientClosed reason = "client_closed" // the client went away
	reasonSlowConsumer reason = "slow_consumer" // its queue was full when a delivery arrived
	reasonWriteTimeout reason = "write_timeout"
	reasonWriteError   reason = "write_error"
	reasonTokenExpired reason = "token_expired"
	reasonMaxLifetime  reason = "max_lifetime"
	reasonShutdown     reason = "shutdown"
	reasonInboxError   reason = "inbox_error" // replay or catch-up could not read the inbox
)

// frame is one item of a connection's queue: a live notification or a heartbeat.
type frame struct {
	seq int64
	// rest is the notification's frame after its sequence number, encoded once for every
	// recipient of the same event (see appendNotification); nil for a heartbeat.
	rest     []byte
	occurred int64 // Batch.OccurredAt in Unix nanoseconds, 0 if unknown
	// batch is the span context of the batch's handling, when it is sampled (else invalid);
	// queued is when the batch arrived, the start of the write spans.
	batch  trace.SpanContext
	queued time.Time
}

// conn is one stream. The hub's goroutines (reader, sweep, presence ticker), the watcher of a
// taken-over connection and the request's cancellation only ever offer it frames, close it and
// renew its presence; everything else, every write included, is the work of its writer. There
// is no writer goroutine while the stream is idle: offering a frame or closing the stream
// starts one unless one is at work (or wakes the parked one), and it returns once the queue is
// empty and, after notifications, the sweep found the stream quiet. One writer at a time,
// taking the frames in the order they were queued, keeps the stream in order.
type conn struct {
	hub       *Hub
	key       presence.Connection
	ctx       context.Context // cancelled, with a reason as cause, when the stream must end
	cancel    context.CancelCauseFunc
	expires   int64 // token expiry, Unix ns; 0: none
	endOfLife int64 // Unix ns
	lastWrite atomic.Int64
	// probe holds the syscall.RawConn of a taken-over connection, which the sweep probes to
	// notice the client going away; empty when the stream is not taken over, or its
	// connection has none (a watcher goroutine reads it then).
	probe atomic.Value

	// qmu guards the queue and the writer's start.
	qmu sync.Mutex
	// queue holds the frames offered since the writer last took them, at most QueueSize; nil
	// when empty, so that an idle stream holds no array.
	queue []frame
	// writing: a writer is at work, parked, or about to be (Serve, until the stream starts;
	// for good once the stream ends). Nobody else starts one then.
	writing bool
	// parked: the writer waits on wake for more to write, after writing notifications (a
	// stream that gets some tends to get more: a new goroutine per notification would grow a
	// fresh stack each time). The sweep retires it once the stream is quiet (retire).
	parked, retire bool
	wake           chan struct{} // while a writer lingers; capacity 1
	// done is closed once the stream ended, when a handler waits for it (the stream runs on
	// net/http); nil when taken over.
	done chan struct{}

	// mu orders the writer's arming of a write deadline against an abort by close: a close
	// that aborts sets the deadline in the past, and the writer never arms after that.
	mu sync.Mutex
	// deadline sets the write deadline of the stream's connection; nil outside the stream.
	deadline func(time.Time) error
	aborted  bool

	// pmu orders presence renewals against the final Unregister, so that a late renewal
	// cannot bring a closed connection's entry back.
	pmu  sync.Mutex
	gone bool

	// The writer's own state.
	w        http.ResponseWriter // nil when the connection was taken over
	flush    func() error
	raw      net.Conn // the connection, when taken over from net/http
	buf      *[]byte  // written since the last flush (pooled); nil when nothing is
	lastSent int64    // the sequence number of the last notification written
	err      error    // the first write or inbox failure
	broken   bool     // a write or flush failed: the connection is unusable
	pending  []int64  // occurred times of the live frames written since the last flush
	wrote    bool     // something was written since the last flush
	// traced are the sampled live frames written since the last flush, for its span.
	traced []frame
}

// offer queues a live frame without blocking; a connection whose queue is full is closed.
func (c *conn) offer(ctx context.Context, f frame) {
	if c.ctx.Err() != nil {
		return
	}
	c.qmu.Lock()
	if len(c.queue) >= c.hub.t.QueueSize {
		c.qmu.Unlock()
		c.hub.m.dropped.Add(ctx, 1)
		c.close(reasonSlowConsumer, true)
		return
	}
	c.queue = append(c.queue, f)
	start := c.claim()
	c.qmu.Unlock()
	if start {
		go c.work()
	}
}

// claim reports whether the caller is to start a writer, and marks one at work; a parked
// writer is woken instead. c.qmu is held.
func (c *conn) claim() bool {
	if c.parked {
		c.parked = false
		c.wake <- struct{}{}
		return false
	}
	if c.writing {
		return false
	}
	c.writing = true
	return true
}

// retireWriter has a parked writer return.
func (c *conn) retireWriter() {
	c.qmu.Lock()
	if c.parked {
		c.retire = true
		c.claim()
	}
	c.qmu.Unlock()
}

// offerPing queues a heartbeat unless the stream is writing or has something queued already:
// either way it is about to write.
func (c *conn) offerPing() {
	if c.ctx.Err() != nil {
		return
	}
	c.qmu.Lock()
	if c.writing || len(c.queue) > 0 {
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, frame{})
	start := c.claim()
	c.qmu.Unlock()
	if start {
		go c.work()
	}
}

// close ends the stream with reason r, unless it is ending already. With abort, a write in
// progress is interrupted at once (the client is not reading, and the writer must not wait out
// its write deadline); without, the writer finishes its write and sends the reason's final
// event, if any.
func (c *conn) close(r reason, abort bool) {
	if c.ctx.Err() != nil {
		return
	}
	c.cancel(r)
	if abort {
		c.mu.Lock()
		c.aborted = true
		if c.deadline != nil {
			_ = c.deadline(time.Now())
		}
		c.mu.Unlock()
	}
	// A writer ends the stream: the one at work notices the cancellation when it next takes
	// the queue.
	c.qmu.Lock()
	start := c.claim()
	c.qmu.Unlock()
	if start {
		go c.work()
	}
}

func (c *conn) bind(w http.ResponseWriter, rc *http.ResponseController, flush func() error) {
	c.w, c.flush = w, c.flushHTTP(flush)
	c.setDeadlineFunc(rc.SetWriteDeadline)
}

// bindRaw makes the stream write to raw, a connection taken over from net/http after the
// response's head: each flush is one chunk of the chunked body.
func (c *conn) bindRaw(raw net.Conn) {
	c.raw, c.flush = raw, c.flushChunk
	c.setDeadlineFunc(raw.SetWriteDeadline)
}

func (c *conn) setDeadlineFunc(f func(time.Time) error) {
	c.mu.Lock()
	c.deadline = f
	aborted := c.aborted
	c.mu.Unlock()
	if aborted {
		c.err = errAborted
	}
}

// unbind forgets the response writer: it must not be touched once the handler returns.
func (c *conn) unbind() {
	c.mu.Lock()
	c.deadline = nil
	c.mu.Unlock()
	if c.buf != nil {
		putBuf(c.buf)
		c.buf = nil
	}
}

// watch reads the taken-over connection until it fails, which is when the client went away
// (or the stream closed it): then it ends the stream. A client sends nothing on a stream;
// whatever it sends is discarded.
func (c *conn) watch(raw net.Conn) {
	var b [64]byte
	for {
		if _, err := raw.Read(b[:]); err != nil {
			c.close(reasonClientClosed, false)
			return
		}
	}
}

// clientGone reports whether the probe of a taken-over stream finds its client gone.
func (c *conn) clientGone(p *prober) bool {
	rc, ok := c.probe.Load().(syscall.RawConn)
	return ok && c.ctx.Err() == nil && p.clientGone(rc)
}

// chunkHead is the room kept at the start of a stream's buffer for the chunk's size line of
// a taken-over stream: up to 8 hex digits and CRLF.
const chunkHead = 10

// maxPooledBuf is the largest buffer kept for reuse: a burst of large frames must not pin
// its memory.
const maxPooledBuf = 64 << 10

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, chunkHead, 1024)
	return &b
}}

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:chunkHead]
	bufPool.Put(b)
}

// flushChunk writes what was written since the last flush as one chunk, with one write, and
// gives the buffer back: an idle stream holds none.
func (c *conn) flushChunk() error {
	b := c.buf
	if b == nil {
		return nil
	}
	c.buf = nil
	defer putBuf(b)
	p := *b
	n := len(p) - chunkHead
	size := strconv.AppendInt(make([]byte, 0, chunkHead), int64(n), 16)
	start := chunkHead - len(size) - 2
	copy(p[start:], size)
	p[chunkHead-2], p[chunkHead-1] = '\r', '\n'
	p = append(p, '\r', '\n')
	*b = p
	_, err := c.raw.Write(p[start:])
	return err
}

// flushHTTP writes what was written since the last flush to the response writer, and flushes
// that (flush, the writer's own).
func (c *conn) flushHTTP(flush func() error) func() error {
	return func() error {
		b := c.buf
		if b == nil {
			return nil
		}
		c.buf = nil
		defer putBuf(b)
		if _, err := c.w.Write((*b)[chunkHead:]); err != nil {
			return err
		}
		return flush()
	}
}

// chunkedEnd is the last chunk of a chunked body (no trailers).
var chunkedEnd = []byte("0\r\n\r\n")

var errAborted = errors.New("stream: aborted")

// arm sets the write deadline of the writes that follow.
func (c *conn) arm() {
	if c.err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		c.err = errAborted
		return
	}
	if err := c.deadline(time.Now().Add(c.hub.t.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		c.err, c.broken = err, true
	}
}

// buffer returns the buffer of what is written until the next flush.
func (c *conn) buffer() *[]byte {
	if c.buf == nil {
		c.buf = bufPool.Get().(*[]byte)
	}
	c.wrote = true
	return c.buf
}

func (c *conn) write(p []byte) {
	if c.err != nil {
		return
	}
	b := c.buffer()
	*b = append(*b, p...)
}

// writeNotification writes the frame of notification seq, whose frame after the sequence
// number is rest.
func (c *conn) writeNotification(seq int64, rest []byte) {
	if c.err != nil {
		return
	}
	b := c.buffer()
	*b = appendNotification(*b, seq, rest)
}

// commit flushes what was written to the client, and then counts it as delivered.
func (c *conn) commit() {
	if len(c.traced) > 0 {
		defer c.endWrite()
	}
	if c.err != nil || !c.wrote {
		return
	}
	// Taken before the flush: once the client has the bytes, the write is in the past.
	at := c.hub.now().UnixNano()
	if err := c.flush(); err != nil {
		c.err, c.broken = err, true
		return
	}
	c.wrote = false
	c.lastWrite.Store(at)
	if len(c.pending) > 0 {
		now := time.Now().UnixNano()
		for _, occurred := range c.pending {
			if occurred != 0 {
				c.hub.m.latency.Record(c.ctx, time.Duration(now-occurred).Seconds())
			}
		}
		c.hub.m.delivered.Add(c.ctx, int64(len(c.pending)))
		c.pending = c.pending[:0]
	}
}

// endWrite records the span of the write that just flushed (or failed) the traced frames: it
// starts when the first of them was queued, is a child of that frame's batch span (so the
// event's trace reaches this stream) and links the batch span of each of them.
func (c *conn) endWrite() {
	links := make([]trace.Link, len(c.traced))
	for i, f := range c.traced {
		links[i] = trace.Link{SpanContext: f.batch}
	}
	first := c.traced[0]
	ctx := trace.ContextWithSpanContext(c.ctx, first.batch)
	_, span := c.hub.tracer.Start(ctx, "sse write",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithTimestamp(first.queued),
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.Int("messaging.batch.message_count", len(c.traced)),
		))
	if c.err != nil {
		span.RecordError(c.err)
		span.SetStatus(codes.Error, c.err.Error())
	}
	span.End()
	clear(c.traced) // let the frames be collected
	c.traced = c.traced[:0]
}

// start opens the stream: the retry hint, then, for a client that resumes, what it missed
// from the inbox. lastSeq is the user's newest sequence number when the stream started. It is
// the work of the stream's first writer, before the queue.
func (c *conn) start(cl Client, lastSeq int64) {
	c.arm()
	c.write(retryFrame(c.hub.retryHint()))
	switch {
	case !cl.Resume:
		// A new client fetched the inbox itself, or has no use for the past: live from now.
		c.lastSent = lastSeq
	case cl.LastEventID > lastSeq || lastSeq-cl.LastEventID > int64(c.hub.t.ReplayLimit):
		// Too far behind to replay, or ahead of the inbox (an id from an inbox that was
		// reset): start over.
		c.commit()
		c.resync()
	default:
		c.commit()
		c.lastSent = cl.LastEventID
		c.catchUp()
	}
	c.commit()
}

// work is the stream's writer: it writes what is queued, a flush per turn, until the queue is
// empty, and returns; or ends the stream once it must end. After notifications it parks
// rather than return, until the sweep retires it. Only one runs at a time (see claim).
func (c *conn) work() {
	linger := false
	for {
		c.qmu.Lock()
		if c.err != nil || c.ctx.Err() != nil {
			// The stream ends: writing stays claimed, so no writer starts after this one.
			c.qmu.Unlock()
			c.end()
			return
		}
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			if !linger || c.retire {
				c.writing, c.retire, c.wake = false, false, nil
				c.qmu.Unlock()
				return
			}
			if c.wake == nil {
				c.wake = make(chan struct{}, 1)
			}
			c.parked = true
			wake := c.wake
			c.qmu.Unlock()
			<-wake
			continue
		}
		c.qmu.Unlock()
		// Everything taken is written with one flush: one chunk, one system call.
		c.arm()
		sent := c.lastSent
		for i := range q {
			c.handle(&q[i])
		}
		c.commit()
		linger = c.lastSent != sent
	}
}

// end finishes the stream: its final event, the end of its body, and the hub forgets it.
func (c *conn) end() {
	if c.err != nil {
		c.close(c.failure(), false)
	}
	r := c.reason()
	c.farewell(r)
	// net/http ends the response (the chunked body's terminator) after the handler returns,
	// then clears the deadline: give that last write a deadline of its own, unless the
	// connection is broken or aborted.
	if !c.broken {
		c.err = nil
		c.arm()
		if c.raw != nil && c.err == nil {
			// Taken over: the stream ends its chunked body itself.
			_, _ = c.raw.Write(chunkedEnd)
		}
	}
	c.hub.finish(c, r)
	// The client sees the end once the hub has forgotten the stream.
	if c.raw != nil {
		_ = c.raw.Close()
	}
	if c.done != nil {
		close(c.done)
	}
}

// handle writes one queued frame, keeping the notifications in sequence.
func (c *conn) handle(f *frame) {
	if c.err != nil {
		return
	}
	if f.rest == nil {
		// A heartbeat, needed only if nothing else goes out with this flush.
		if !c.wrote {
			c.write(c.hub.ping)
		}
		return
	}
	switch {
	case f.seq <= c.lastSent:
		// Already sent: replayed from the inbox, or delivered twice.
		c.hub.m.duplicates.Add(c.ctx, 1)
		return
	case f.seq > c.lastSent+1:
		// A gap: what came before was lost on the way (push is best effort) or is still on
		// it. The inbox has it.
		c.commit()
		if f.seq-c.lastSent-1 > int64(c.hub.t.ReplayLimit) {
			c.resync()
		} else {
			c.catchUp()
		}
		if c.err != nil || f.seq <= c.lastSent {
			return
		}
		// Still missing from the inbox, which stores before it publishes: a hole in the
		// sequence. Go on rather than stall.
		c.arm()
	}
	c.writeNotification(f.seq, f.rest)
	if c.err == nil {
		c.lastSent = f.seq
		c.pending = append(c.pending, f.occurred)
		if f.batch.IsSampled() {
			c.traced = append(c.traced, *f)
		}
	}
}

// catchUp sends the inbox's notifications after lastSent, oldest first, a page at a time, up
// to ReplayLimit of them; when there are more, it resyncs instead of going on.
func (c *conn) catchUp() {
	budget := c.hub.t.ReplayLimit
	for c.err == nil {
		resp, err := c.hub.listSince(c.ctx, c.key.UserID, c.lastSent, budget)
		if err != nil {
			c.err = inboxError{err}
			return
		}
		c.arm()
		progressed := false
		for _, p := range resp.GetItems() {
			if p.GetSeq() <= c.lastSent {
				continue
			}
			n, err := NotificationFromProto(p)
			if err != nil {
				c.hub.log.LogAttrs(c.ctx, slog.LevelWarn, "notification with malformed data sent with empty data",
					slog.String("user_id", c.key.UserID), slog.Int64("seq", p.GetSeq()), slog.String("error", err.Error()))
			}
			rest, err := notificationRest(n)
			if err != nil {
				c.err = inboxError{err}
				return
			}
			c.writeNotification(n.Seq, rest)
			if c.err != nil {
				return
			}
			c.lastSent = n.Seq
			budget--
			progressed = true
			c.hub.m.replayed.Add(c.ctx, 1)
		}
		c.commit()
		switch {
		case !resp.GetHasMore():
			return
		case budget <= 0:
			c.resync()
			return
		case !progressed:
			// More promised but nothing new given: do not spin on it.
			c.err = inboxError{errors.New("inbox: ListSince reported more but returned nothing new")}
			return
		}
	}
}

// resync tells the client to fetch its inbox, and continues live from the newest
// notification. The event carries that notification's sequence number as its id, so that a
// reconnecting client resumes from there.
func (c *conn) resync() {
	if c.err != nil {
		return
	}
	uc, err := c.hub.unreadCount(c.ctx, c.key.UserID)
	if err != nil {
		c.err = inboxError{err}
		return
	}
	c.lastSent = uc.GetLastSeq()
	c.arm()
	c.write(resyncFrame(c.lastSent))
	c.commit()
	c.hub.m.resyncs.Add(c.ctx, 1)
}

type inboxError struct{ err error }

func (e inboxError) Error() string { return "stream: read the inbox: " + e.err.Error() }
func (e inboxError) Unwrap() error { return e.err }

// failure maps the writer's error to a reason.
func (c *conn) failure() reason {
	var ie inboxError
	switch {
	case c.ctx.Err() != nil:
		return c.reason() // the error came from the stream being closed
	case errors.As(c.err, &ie):
		c.hub.log.LogAttrs(c.ctx, slog.LevelWarn, "event stream closed: the inbox could not be read",
			slog.String("user_id", c.key.UserID), slog.String("error", ie.err.Error()))
		return reasonInboxError
	case errors.Is(c.err, os.ErrDeadlineExceeded):
		return reasonWriteTimeout
	}
	return reasonWriteError
}

// reason is why the stream ended (or is ending).
func (c *conn) reason() reason {
	var r reason
	if errors.As(context.Cause(c.ctx), &r) {
		return r
	}
	return reasonClientClosed
}

// farewell sends the final event of a stream the server ends on purpose, best effort.
func (c *conn) farewell(r reason) {
	var ev []byte
	switch r {
	case reasonTokenExpired:
		ev = tokenExpiredFrame
	case reasonMaxLifetime, reasonShutdown:
		ev = reconnectFrame
	default:
		return
	}
	if c.broken {
		return
	}
	c.err = nil
	c.arm()
	c.write(ev)
	c.commit()
}

// Frames.
var (
	tokenExpiredFrame = []byte("event: token_expired\ndata: {}\n\n")
	reconnectFrame    = []byte("event: reconnect\ndata: {}\n\n")
)

func retryFrame(ms int64) []byte {
	b := append([]byte("retry: "), strconv.FormatInt(ms, 10)...)
	return append(b, "\n\n"...)
}

func resyncFrame(lastSeq int64) []byte {
	s := strconv.FormatInt(lastSeq, 10)
	return []byte("id: " + s + "\nevent: resync\ndata: {\"last_seq\":" + s + "}\n\n")
}

// flusherOf returns the flush of w that reports errors: the innermost writer's FlushError when
// there is one (middleware wrappers only forward Flush, which loses the error), else its Flush.
// It returns nil if w cannot flush at all.
func flusherOf(w http.ResponseWriter) func() error {
	var plain http.Flusher
	for {
		if f, ok := w.(interface{ FlushError() error }); ok {
			return f.FlushError
		}
		if f, ok := w.(http.Flusher); ok && plain == nil {
			plain = f
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	if plain == nil {
		return nil
	}
	return func() error {
		plain.Flush()
		return nil
	}
}
