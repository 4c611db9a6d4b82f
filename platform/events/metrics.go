package events

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// routerMetrics are the router's instruments. Counters carry the attributes topic and handler;
// the histogram adds outcome ("ok" or "error").
type routerMetrics struct {
	handled  metric.Int64Counter
	failed   metric.Int64Counter
	poisoned metric.Int64Counter
	duration metric.Float64Histogram
}

func newRouterMetrics(mp metric.MeterProvider) (routerMetrics, error) {
	meter := mp.Meter(instrumentationName)
	var m routerMetrics
	var errs [4]error
	m.handled, errs[0] = meter.Int64Counter("events.handled",
		metric.WithDescription("Messages whose handler succeeded (they were acked)."),
		metric.WithUnit("{message}"))
	m.failed, errs[1] = meter.Int64Counter("events.failed",
		metric.WithDescription("Handler attempts that returned an error; each retry counts."),
		metric.WithUnit("{attempt}"))
	m.poisoned, errs[2] = meter.Int64Counter("events.poisoned",
		metric.WithDescription("Messages sent to the dead-letter topic."),
		metric.WithUnit("{message}"))
	m.duration, errs[3] = meter.Float64Histogram("events.handler.duration",
		metric.WithDescription("Duration of one handler attempt."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err := errors.Join(errs[:]...); err != nil {
		return routerMetrics{}, fmt.Errorf("events: create router instruments: %w", err)
	}
	return m, nil
}
