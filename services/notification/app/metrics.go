package app

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the service's instruments. A failed instrument creation leaves a usable no-op
// instrument, so it is logged, not fatal.
type metrics struct {
	// stored counts notifications stored (new ones only), by type.
	stored metric.Int64Counter
	// batchSize records the recipients of each inbox transaction, by type.
	batchSize metric.Int64Histogram
	// pushed counts batches published to a gateway instance.
	pushed metric.Int64Counter
	// pushFailures counts failed pushes, by stage: "routes" (the presence lookup of a batch)
	// or "publish" (one instance's batch).
	pushFailures metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider, log *slog.Logger) metrics {
	meter := mp.Meter(instrumentationName)
	var m metrics
	warn := func(err error) {
		if err != nil {
			log.LogAttrs(context.Background(), slog.LevelWarn, "metric instrument not created", slog.String("error", err.Error()))
		}
	}
	var err error
	m.stored, err = meter.Int64Counter("notification.stored",
		metric.WithDescription("Notifications stored in inboxes (redeliveries excluded), by event type."),
		metric.WithUnit("{notification}"))
	warn(err)
	m.batchSize, err = meter.Int64Histogram("notification.fanout.batch_size",
		metric.WithDescription("Recipients per inbox transaction, by event type."),
		metric.WithUnit("{recipient}"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000))
	warn(err)
	m.pushed, err = meter.Int64Counter("notification.push.published",
		metric.WithDescription("Batches published to a gateway instance's push channel."),
		metric.WithUnit("{batch}"))
	warn(err)
	m.pushFailures, err = meter.Int64Counter("notification.push.failures",
		metric.WithDescription("Pushes that failed (the recipients catch up from the inbox), by stage: routes or publish."),
		metric.WithUnit("{failure}"))
	warn(err)
	return m
}

func metricAttrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributes(kv...)
}
