package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentationName names the meter of this package.
const instrumentationName = "github.com/piazza-social/piazza/platform/events/kafkabus"

// LagMetric is the gauge of consumer lag: per consumer group, topic and partition, the records
// not yet consumed by the group. The embedded bus (sqlbus) reports the same name with the same
// attributes, so dashboards and alerts serve both modes.
const LagMetric = "events.consumer.lag"

// groupTopic is one consumer group's subscription to one topic.
type groupTopic struct{ group, topic string }

// lagReading is the lag of one group on one partition.
type lagReading struct {
	groupTopic
	partition int32
	lag       int64
}

// lagMonitor measures, in the background, the lag of every consumer group this process
// subscribes, and reports the last measurement in the LagMetric gauge. Measuring talks to the
// brokers, so it never happens inside a metrics collection: a Prometheus scrape, with its
// short timeout, must not wait for Kafka.
type lagMonitor struct {
	client   sarama.Client
	admin    sarama.ClusterAdmin
	interval time.Duration
	log      *slog.Logger
	kick     chan struct{}
	reg      metric.Registration

	mu       sync.Mutex
	subs     map[groupTopic]int // open subscriptions per group and topic
	readings []lagReading
	failing  bool // the last measurement failed (logged once, until one succeeds)
}

func newLagMonitor(client sarama.Client, admin sarama.ClusterAdmin, interval time.Duration, mp metric.MeterProvider, log *slog.Logger) (*lagMonitor, error) {
	m := &lagMonitor{
		client: client, admin: admin, interval: interval, log: log,
		kick: make(chan struct{}, 1),
		subs: map[groupTopic]int{},
	}
	meter := mp.Meter(instrumentationName)
	gauge, err := meter.Int64ObservableGauge(LagMetric,
		metric.WithDescription("Records of a partition not yet consumed by a consumer group: the partition's high watermark minus the group's committed offset (its oldest offset while the group has committed none), by group, topic and partition."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("kafkabus: create %s gauge: %w", LagMetric, err)
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, r := range m.current() {
			o.ObserveInt64(gauge, r.lag, metric.WithAttributes(
				attribute.String("group", r.group),
				attribute.String("topic", r.topic),
				attribute.Int("partition", int(r.partition))))
		}
		return nil
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: register %s callback: %w", LagMetric, err)
	}
	return m, nil
}

// add records a subscription of group to topic and asks for a measurement soon, so that a new
// group's lag appears without waiting a whole interval.
func (m *lagMonitor) add(k groupTopic) {
	m.mu.Lock()
	m.subs[k]++
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// remove forgets one subscription of group to topic; its lag is no longer reported once the
// group has no subscription left to the topic in this process.
func (m *lagMonitor) remove(k groupTopic) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs[k]--; m.subs[k] <= 0 {
		delete(m.subs, k)
	}
}

// current returns the last readings of the subscriptions still open.
func (m *lagMonitor) current() []lagReading {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]lagReading, 0, len(m.readings))
	for _, r := range m.readings {
		if m.subs[r.groupTopic] > 0 {
			out = append(out, r)
		}
	}
	return out
}

// run measures every interval (and on each kick) until ctx is cancelled.
func (m *lagMonitor) run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		m.measureAll(ctx)
	}
}

func (m *lagMonitor) measureAll(ctx context.Context) {
	m.mu.Lock()
	byGroup := map[string][]string{}
	for k := range m.subs {
		byGroup[k.group] = append(byGroup[k.group], k.topic)
	}
	m.mu.Unlock()
	if len(byGroup) == 0 {
		return
	}

	var readings []lagReading
	var errs []error
	for group, topics := range byGroup {
		r, err := m.measure(group, topics)
		if err != nil {
			errs = append(errs, err)
			continue // its series disappear: no number beats a stale one
		}
		readings = append(readings, r...)
	}
	err := errors.Join(errs...)

	m.mu.Lock()
	m.readings = readings
	wasFailing := m.failing
	m.failing = err != nil
	m.mu.Unlock()
	switch {
	case ctx.Err() != nil:
	case err != nil && !wasFailing:
		m.log.WarnContext(ctx, "measuring consumer lag failed", "error", err)
	case err == nil && wasFailing:
		m.log.InfoContext(ctx, "measuring consumer lag works again")
	}
}

// measure reads the lag of group on every partition of topics.
func (m *lagMonitor) measure(group string, topics []string) ([]lagReading, error) {
	sort.Strings(topics)
	parts := make(map[string][]int32, len(topics))
	for _, topic := range topics {
		ps, err := m.client.Partitions(topic)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		parts[topic] = ps
	}
	committed, err := m.admin.ListConsumerGroupOffsets(group, parts)
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	var out []lagReading
	for _, topic := range topics {
		for _, p := range parts[topic] {
			newest, err := m.client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("high watermark of %s/%d: %w", topic, p, err)
			}
			offset := int64(-1)
			if b := committed.GetBlock(topic, p); b != nil && errors.Is(b.Err, sarama.ErrNoError) {
				offset = b.Offset
			}
			if offset < 0 {
				// Nothing committed yet: the group starts at the oldest record still kept.
				if offset, err = m.client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
					return nil, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
				}
			}
			out = append(out, lagReading{groupTopic: groupTopic{group, topic}, partition: p, lag: lag(newest, offset)})
		}
	}
	return out, nil
}

// lag is what a group at offset next (the next record it reads) has left on a partition whose
// next record gets offset highWatermark. Retention may have deleted records below a stale
// committed offset, and the two offsets are read one after the other: it is never negative.
func lag(highWatermark, next int64) int64 {
	return max(highWatermark-next, 0)
}

func (m *lagMonitor) close() error {
	return m.reg.Unregister()
}
