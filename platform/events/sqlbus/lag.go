package sqlbus

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentationName names the meter of this package.
const instrumentationName = "github.com/piazza-social/piazza/platform/events/sqlbus"

// LagMetric is the gauge of consumer lag: per consumer group, topic and partition, the messages
// not yet acked by the group. It has the name and attributes of the Kafka bus's gauge
// (kafkabus.LagMetric), so dashboards serve both run modes.
const LagMetric = "events.consumer.lag"

// lagTimeout bounds the query behind one collection of the gauge.
const lagTimeout = 2 * time.Second

// registerLag creates the lag gauge. Each collection counts, for every group consuming in this
// process, the messages of each partition above the group's cursor: an index range on
// (topic, part, seq), small while the group keeps up.
func (b *Bus) registerLag(mp metric.MeterProvider) (metric.Registration, error) {
	meter := mp.Meter(instrumentationName)
	gauge, err := meter.Int64ObservableGauge(LagMetric,
		metric.WithDescription("Messages of a partition not yet acked by a consumer group, by group, topic and partition."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("sqlbus: create %s gauge: %w", LagMetric, err)
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, lagTimeout)
		defer cancel()
		readings, err := b.lag(ctx)
		if err != nil {
			return err
		}
		for _, r := range readings {
			o.ObserveInt64(gauge, r.lag, metric.WithAttributes(
				attribute.String("group", r.group),
				attribute.String("topic", r.topic),
				attribute.Int("partition", r.part)))
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("sqlbus: register %s callback: %w", LagMetric, err)
	}
	return reg, nil
}

type lagReading struct {
	groupKey
	part int
	lag  int64
}

// lag returns the lag of every group consuming in this process (a group that consumed once and
// stopped is not reported: its lag would only grow, and it is nobody's concern here).
func (b *Bus) lag(ctx context.Context) ([]lagReading, error) {
	b.mu.Lock()
	running := make(map[groupKey]bool, len(b.groups))
	for k := range b.groups {
		running[k] = true
	}
	b.mu.Unlock()
	if len(running) == 0 {
		return nil, nil
	}
	rows, err := b.db.SQL().QueryContext(ctx, `
		SELECT o.topic, o.group_name, o.part,
		       (SELECT count(*) FROM bus_messages m
		        WHERE m.topic = o.topic AND m.part = o.part AND m.seq > o.acked_seq)
		FROM bus_offsets o`)
	if err != nil {
		return nil, fmt.Errorf("sqlbus: read consumer lag: %w", err)
	}
	defer rows.Close()
	var out []lagReading
	for rows.Next() {
		var r lagReading
		if err := rows.Scan(&r.topic, &r.group, &r.part, &r.lag); err != nil {
			return nil, fmt.Errorf("sqlbus: read consumer lag: %w", err)
		}
		if running[r.groupKey] {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlbus: read consumer lag: %w", err)
	}
	return out, nil
}
