package eventstest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/platform/events"
)

// The suite is exercised here against memBus, a minimal in-memory bus written to the contract,
// so that a change to the suite is checked without any server. It is no adapter: one log per
// topic (a single partition), a cursor per consumer group that starts at the end of the log,
// one message in flight per group and topic.
func TestContractSuiteAcceptsAConformingBus(t *testing.T) {
	RunBusContract(t, func(t *testing.T) events.Bus {
		b := newMemBus()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

type memBus struct {
	mu      sync.Mutex
	logs    map[string][]*message.Message
	cursors map[cursorKey]*cursor
	changed chan struct{} // closed and replaced on every change
}

type cursorKey struct{ group, topic string }

type cursor struct {
	next     int
	inflight bool
}

func newMemBus() *memBus {
	return &memBus{logs: map[string][]*message.Message{}, cursors: map[cursorKey]*cursor{}, changed: make(chan struct{})}
}

func (b *memBus) broadcastLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *memBus) Publish(topic string, msgs ...*message.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		b.logs[topic] = append(b.logs[topic], m.Copy())
	}
	b.broadcastLocked()
	return nil
}

func (b *memBus) Close() error { return nil }

func (b *memBus) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("empty group")
	}
	return &memSub{bus: b, group: group, closing: make(chan struct{})}, nil
}

// take blocks until the group's next message on topic is available and not in flight.
func (b *memBus) take(key cursorKey, stop <-chan struct{}) (*message.Message, bool) {
	for {
		b.mu.Lock()
		c := b.cursors[key]
		if !c.inflight && c.next < len(b.logs[key.topic]) {
			c.inflight = true
			m := b.logs[key.topic][c.next].Copy()
			b.mu.Unlock()
			return m, true
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			return nil, false
		}
	}
}

func (b *memBus) release(key cursorKey, acked bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cursors[key]
	c.inflight = false
	if acked {
		c.next++
	}
	b.broadcastLocked()
}

type memSub struct {
	bus       *memBus
	group     string
	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup
}

func (s *memSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	key := cursorKey{s.group, topic}
	s.bus.mu.Lock()
	if s.bus.cursors[key] == nil {
		s.bus.cursors[key] = &cursor{next: len(s.bus.logs[topic])}
	}
	s.bus.mu.Unlock()

	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		close(stop)
	}()
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		for {
			m, ok := s.bus.take(key, stop)
			if !ok {
				return
			}
			m.SetContext(ctx)
			select {
			case out <- m:
			case <-stop:
				s.bus.release(key, false)
				return
			}
			select {
			case <-m.Acked():
				s.bus.release(key, true)
			case <-m.Nacked():
				s.bus.release(key, false)
			case <-stop:
				s.bus.release(key, false)
				return
			}
		}
	}()
	return out, nil
}

func (s *memSub) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}
