package push

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// MemoryConfig configures a Memory pub/sub.
type MemoryConfig struct {
	// Buffer is the capacity of each subscription's channel. Default DefaultBuffer.
	Buffer int
	// LogInterval is the minimum interval between two warnings about dropped messages.
	// Default DefaultLogInterval.
	LogInterval time.Duration
	// MeterProvider makes the push.dropped counter; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// Memory is the in-process Publisher and Subscriber of the embedded mode. Publish hands a
// copy of the message to every current subscription of the instance before it returns, so
// messages from one publisher arrive in order; it never blocks (see the package doc).
type Memory struct {
	buffer int
	drops  *drops

	mu   sync.Mutex
	subs map[string][]chan []byte // instance id → subscriptions
}

var (
	_ Publisher  = (*Memory)(nil)
	_ Subscriber = (*Memory)(nil)
)

// NewMemory returns a Memory pub/sub. log (may be nil) receives the warnings about drops.
func NewMemory(cfg MemoryConfig, log *slog.Logger) (*Memory, error) {
	buffer, err := bufferOf(cfg.Buffer)
	if err != nil {
		return nil, err
	}
	d, err := newDrops(cfg.MeterProvider, log, cfg.LogInterval)
	if err != nil {
		return nil, err
	}
	return &Memory{buffer: buffer, drops: d, subs: map[string][]chan []byte{}}, nil
}

// Publish implements Publisher. A message for an instance nobody subscribes to is discarded.
func (m *Memory) Publish(ctx context.Context, instanceID string, msg []byte) error {
	if instanceID == "" {
		return ErrEmptyInstance
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.subs[instanceID] {
		select {
		case ch <- slices.Clone(msg):
		default:
			m.drops.drop(ctx, instanceID)
		}
	}
	return nil
}

// Subscribe implements Subscriber; the subscription is active when it returns.
func (m *Memory) Subscribe(ctx context.Context, instanceID string) (<-chan []byte, error) {
	if instanceID == "" {
		return nil, ErrEmptyInstance
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan []byte, m.buffer)
	m.mu.Lock()
	m.subs[instanceID] = append(m.subs[instanceID], ch)
	m.mu.Unlock()
	context.AfterFunc(ctx, func() {
		// Under the lock, so that no Publish sends on the closed channel.
		m.mu.Lock()
		defer m.mu.Unlock()
		subs := slices.DeleteFunc(m.subs[instanceID], func(c chan []byte) bool { return c == ch })
		if len(subs) == 0 {
			delete(m.subs, instanceID)
		} else {
			m.subs[instanceID] = subs
		}
		close(ch)
	})
	return ch, nil
}
