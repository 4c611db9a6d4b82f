package stream

import (
	"context"
	"errors"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
)

const instrumentationName = "github.com/piazza-social/piazza/services/gateway/stream"

// metrics are the streams' instruments.
type metrics struct {
	open           metric.Int64UpDownCounter
	connects       metric.Int64Counter
	disconnects    metric.Int64Counter // by reason
	delivered      metric.Int64Counter
	replayed       metric.Int64Counter
	dropped        metric.Int64Counter
	duplicates     metric.Int64Counter
	resyncs        metric.Int64Counter
	latency        metric.Float64Histogram
	malformed      metric.Int64Counter
	presenceErrors metric.Int64Counter // by op
	eventFailures  metric.Int64Counter // by why
}

func newMetrics(mp metric.MeterProvider, log *slog.Logger) metrics {
	meter := mp.Meter(instrumentationName)
	var m metrics
	var errs [12]error
	m.open, errs[0] = meter.Int64UpDownCounter("gateway.sse.connections",
		metric.WithDescription("Event streams open on this instance."), metric.WithUnit("{connection}"))
	m.connects, errs[1] = meter.Int64Counter("gateway.sse.connects",
		metric.WithDescription("Event streams opened."), metric.WithUnit("{connection}"))
	m.disconnects, errs[2] = meter.Int64Counter("gateway.sse.disconnects",
		metric.WithDescription("Event streams closed, by reason: client_closed, slow_consumer, write_timeout, write_error, token_expired, max_lifetime, shutdown, inbox_error."),
		metric.WithUnit("{connection}"))
	m.delivered, errs[3] = meter.Int64Counter("gateway.sse.deliveries",
		metric.WithDescription("Live notifications written to event streams."), metric.WithUnit("{notification}"))
	m.replayed, errs[4] = meter.Int64Counter("gateway.sse.replayed",
		metric.WithDescription("Notifications written from the inbox: replays after a reconnect, and gap catch-ups."),
		metric.WithUnit("{notification}"))
	m.dropped, errs[5] = meter.Int64Counter("gateway.sse.dropped",
		metric.WithDescription("Live notifications dropped because the stream's queue was full (the stream is closed as a slow consumer)."),
		metric.WithUnit("{notification}"))
	m.duplicates, errs[6] = meter.Int64Counter("gateway.sse.duplicates",
		metric.WithDescription("Live notifications not written because the stream had sent them already."),
		metric.WithUnit("{notification}"))
	m.resyncs, errs[7] = meter.Int64Counter("gateway.sse.resyncs",
		metric.WithDescription("Streams told to resync: more notifications missed than a replay sends."),
		metric.WithUnit("{event}"))
	m.latency, errs[8] = meter.Float64Histogram("gateway.sse.delivery_latency",
		metric.WithDescription("From the originating event to the notification written to the stream."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	m.malformed, errs[9] = meter.Int64Counter("gateway.sse.push_malformed",
		metric.WithDescription("Push batches or deliveries that could not be decoded, dropped."), metric.WithUnit("{message}"))
	m.presenceErrors, errs[10] = meter.Int64Counter("gateway.presence.errors",
		metric.WithDescription("Failed presence registrations, renewals and removals, by op."), metric.WithUnit("{connection}"))
	m.eventFailures, errs[11] = meter.Int64Counter("gateway.presence.events_lost",
		metric.WithDescription("Presence events not published, by why: queue_full, publish (retries exhausted), encode."),
		metric.WithUnit("{event}"))
	// A failed instrument creation still returns a usable no-op instrument: log and go on.
	if err := errors.Join(errs[:]...); err != nil {
		log.LogAttrs(context.Background(), slog.LevelWarn, "metric instrument not created", slog.String("error", err.Error()))
	}
	return m
}
