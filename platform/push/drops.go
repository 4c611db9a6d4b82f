package push

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const instrumentationName = "github.com/piazza-social/piazza/platform/push"

// DefaultLogInterval is the default minimum interval between two warnings about dropped
// messages.
const DefaultLogInterval = 10 * time.Second

// drops counts messages dropped for slow receivers and logs about them, at most once per
// interval (a receiver that stalls would otherwise log once per message).
type drops struct {
	counter  metric.Int64Counter
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	lastLog time.Time
	pending int64 // dropped since the last warning
}

func newDrops(mp metric.MeterProvider, log *slog.Logger, interval time.Duration) (*drops, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval == 0 {
		interval = DefaultLogInterval
	}
	if interval < 0 {
		return nil, fmt.Errorf("push: LogInterval %s is negative", interval)
	}
	counter, err := mp.Meter(instrumentationName).Int64Counter("push.dropped",
		metric.WithDescription("Messages dropped because the subscription's receiver had not taken the previous ones."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("push: create instruments: %w", err)
	}
	return &drops{counter: counter, log: log, interval: interval}, nil
}

// drop records one message dropped for instanceID's subscription.
func (d *drops) drop(ctx context.Context, instanceID string) {
	d.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("push.instance", instanceID)))
	d.mu.Lock()
	d.pending++
	now := time.Now()
	if now.Sub(d.lastLog) < d.interval {
		d.mu.Unlock()
		return
	}
	n := d.pending
	d.pending, d.lastLog = 0, now
	d.mu.Unlock()
	d.log.WarnContext(ctx, "push: receiver too slow, messages dropped",
		slog.String("instance_id", instanceID), slog.Int64("dropped", n))
}
