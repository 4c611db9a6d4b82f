package sqlbus

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Subscriber consumes as one consumer group. It implements message.Subscriber.
type Subscriber struct {
	bus   *Bus
	group string

	mu      sync.Mutex
	closed  bool
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// Subscribe starts consuming topic as the subscriber's group and returns the messages. The
// first subscription of a group to a topic, ever, fixes where the group starts: at the end of
// the log. The channel closes when ctx is cancelled or the subscriber or the bus is closed; a
// message received but not acked by then is delivered again to the group's next subscriber.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("sqlbus: empty topic")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	b := s.bus
	if err := b.ensureOffsets(ctx, topic, s.group); err != nil {
		return nil, err
	}
	subCtx, cancel := context.WithCancel(ctx)
	stopWithBus := context.AfterFunc(b.ctx, cancel)
	g, err := b.attach(topic, s.group)
	if err != nil {
		stopWithBus()
		cancel()
		return nil, err
	}
	s.cancels = append(s.cancels, cancel)
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer b.wg.Done() // attach counted this forwarder
		defer stopWithBus()
		b.forward(subCtx, g, out)
	}()
	return out, nil
}

// Close ends the subscriber's subscriptions and returns when their channels are closed.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancels := s.cancels
	s.cancels = nil
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	s.wg.Wait()
	return nil
}

type groupKey struct{ topic, group string }

// group runs the consumption of one topic by one consumer group in this process: a worker per
// partition reads the log and offers messages on deliveries, where every subscription of the
// group (a forwarder each) takes them.
type group struct {
	key        groupKey
	deliveries chan *delivery
	refs       int // subscriptions attached

	ctx    context.Context // cancelled when the last subscription leaves or the bus closes
	cancel context.CancelFunc
	after  <-chan struct{} // done of the previous run of this key: its cursors must be final
	done   chan struct{}   // closed when every worker has returned
}

type outcome int

const (
	acked outcome = iota
	nacked
	abandoned // the subscription ended before the handler acked or nacked
)

type stored struct {
	seq      int64
	uuid     string
	part     int
	metadata message.Metadata
	payload  []byte
}

type delivery struct {
	msg    *stored
	result chan outcome // buffered: the forwarder never waits to report
}

// ensureOffsets creates the group's cursors for topic at the end of the log, unless they exist.
func (b *Bus) ensureOffsets(ctx context.Context, topic, group string) error {
	err := b.db.InTx(ctx, func(tx *sql.Tx) error {
		var head int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM bus_messages`).Scan(&head); err != nil {
			return err
		}
		for p := range Partitions {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO bus_offsets (topic, group_name, part, acked_seq) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				topic, group, p, head); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlbus: subscribe %s to %s: %w", group, topic, err)
	}
	return nil
}

// attach adds a subscription to the group's run, starting the run if there is none. It counts
// the subscription's forwarder in b.wg.
func (b *Bus) attach(topic, name string) (*group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	key := groupKey{topic, name}
	g := b.groups[key]
	if g == nil {
		g = &group{key: key, deliveries: make(chan *delivery), done: make(chan struct{})}
		g.ctx, g.cancel = context.WithCancel(b.ctx)
		g.after = b.lastRun(key)
		b.groups[key] = g
		var workers sync.WaitGroup
		for p := range Partitions {
			workers.Add(1)
			b.wg.Go(func() {
				defer workers.Done()
				b.work(g, p)
			})
		}
		b.wg.Go(func() {
			workers.Wait()
			close(g.done)
		})
	}
	g.refs++
	b.wg.Add(1)
	return g, nil
}

// lastRun returns the done channel of the key's previous run; b.mu is held.
func (b *Bus) lastRun(key groupKey) <-chan struct{} {
	if ch, ok := b.finished[key]; ok {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// detach removes a subscription; the last one stops the run.
func (b *Bus) detach(g *group) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g.refs--
	if g.refs == 0 {
		delete(b.groups, g.key)
		b.finished[g.key] = g.done
		g.cancel()
	}
}

// forward hands the group's deliveries to one subscription's channel and reports what the
// handler did with each. It does not wait for a handler before taking the next delivery:
// messages of different partitions are in flight together (a watermill router handles each
// message in a goroutine of its own), while each partition's worker keeps its own to one.
func (b *Bus) forward(ctx context.Context, g *group, out chan<- *message.Message) {
	var inflight sync.WaitGroup
	defer close(out)
	defer b.detach(g)
	// Every outcome is reported before the group may stop (see deliver).
	defer inflight.Wait()
	for {
		var d *delivery
		select {
		case d = <-g.deliveries:
		case <-ctx.Done():
			return
		}
		msg := message.NewMessage(d.msg.uuid, append([]byte{}, d.msg.payload...))
		for k, v := range d.msg.metadata {
			msg.Metadata.Set(k, v)
		}
		msg.SetContext(ctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			d.result <- abandoned
			return
		}
		inflight.Go(func() { d.result <- awaitOutcome(ctx, msg) })
	}
}

func awaitOutcome(ctx context.Context, msg *message.Message) outcome {
	select {
	case <-msg.Acked():
		return acked
	case <-msg.Nacked():
		return nacked
	case <-ctx.Done():
		select {
		case <-msg.Acked(): // acked just as the subscription ended: keep the ack
			return acked
		default:
			return abandoned
		}
	}
}

// work consumes one partition of the group's topic: in log order, one message in flight, the
// cursor moved past a message only once it was acked.
func (b *Bus) work(g *group, part int) {
	select {
	case <-g.after:
	case <-g.ctx.Done():
		return
	}
	topic, name := g.key.topic, g.key.group
	var cursor int64
	for {
		err := b.db.SQL().QueryRowContext(g.ctx,
			`SELECT acked_seq FROM bus_offsets WHERE topic = $1 AND group_name = $2 AND part = $3`,
			topic, name, part).Scan(&cursor)
		if err == nil {
			break
		}
		if !b.pause(g.ctx, "read cursor", err) {
			return
		}
	}
	var batch []*stored
	for {
		if len(batch) == 0 {
			// Take the wake-up channel before reading, so a publish committed after the read
			// cannot be missed.
			wake := b.signalFor(topic).wait()
			var err error
			batch, err = b.fetch(g.ctx, topic, part, cursor)
			if err != nil {
				if !b.pause(g.ctx, "read log", err) {
					return
				}
				continue
			}
			if len(batch) == 0 {
				timer := time.NewTimer(b.cfg.PollInterval)
				select {
				case <-wake:
				case <-timer.C:
				case <-g.ctx.Done():
					timer.Stop()
					return
				}
				timer.Stop()
				continue
			}
		}
		m := batch[0]
		if !b.deliver(g, m) {
			return
		}
		batch = batch[1:]
		cursor = m.seq
		b.saveCursor(g, part, cursor)
	}
}

// deliver offers m until a handler acks it; it reports false if the run stopped first.
func (b *Bus) deliver(g *group, m *stored) bool {
	for {
		d := &delivery{msg: m, result: make(chan outcome, 1)}
		select {
		case g.deliveries <- d:
		case <-g.ctx.Done():
			return false
		}
		var o outcome
		select {
		case o = <-d.result:
		case <-g.ctx.Done():
			// The forwarder reports before it detaches, so its last word is here by now.
			select {
			case o = <-d.result:
			default:
				return false
			}
			if o == acked {
				b.saveCursor(g, m.part, m.seq)
			}
			return false
		}
		switch o {
		case acked:
			return true
		case nacked:
			if b.cfg.NackResendDelay > 0 {
				timer := time.NewTimer(b.cfg.NackResendDelay)
				select {
				case <-timer.C:
				case <-g.ctx.Done():
					timer.Stop()
					return false
				}
			}
		case abandoned:
			// Offer it again: another subscription of the group, or the next one, takes it.
		}
	}
}

func (b *Bus) fetch(ctx context.Context, topic string, part int, after int64) ([]*stored, error) {
	rows, err := b.db.SQL().QueryContext(ctx,
		`SELECT seq, uuid, metadata, payload FROM bus_messages WHERE topic = $1 AND part = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		topic, part, after, b.cfg.FetchBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*stored
	for rows.Next() {
		var (
			m  stored
			md string
		)
		if err := rows.Scan(&m.seq, &m.uuid, &md, &m.payload); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(md), &m.metadata); err != nil {
			return nil, fmt.Errorf("decode metadata of message %d: %w", m.seq, err)
		}
		m.part = part
		out = append(out, &m)
	}
	return out, rows.Err()
}

// saveCursor records that the group acked everything up to seq in part. A failure is logged and
// otherwise ignored: the cursor in memory moves on, and the next save covers this one; only if
// the process stops before then is the message delivered again (at least once).
func (b *Bus) saveCursor(g *group, part int, seq int64) {
	// Not g.ctx: an ack that arrived must be recorded even while the run is stopping.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(g.ctx), 10*time.Second)
	defer cancel()
	_, err := b.db.SQL().ExecContext(ctx,
		`UPDATE bus_offsets SET acked_seq = $1 WHERE topic = $2 AND group_name = $3 AND part = $4 AND acked_seq < $1`,
		seq, g.key.topic, g.key.group, part)
	if err != nil {
		b.log.WarnContext(ctx, "recording an ack failed; the message may be delivered again after a restart",
			"topic", g.key.topic, "group", g.key.group, "partition", part, "seq", seq, "error", err)
	}
}

// pause waits a moment after a failed read; it reports false if the run stopped meanwhile.
func (b *Bus) pause(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	b.log.WarnContext(ctx, "event log "+what+" failed; retrying", "error", err)
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
