package kafkabus

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/piazza-social/piazza/platform/logging"
)

func TestLagIsTheRecordsBetweenTheCommittedOffsetAndTheHighWatermark(t *testing.T) {
	for _, c := range []struct {
		name                string
		highWatermark, next int64
		want                int64
	}{
		{"caught up", 42, 42, 0},
		{"behind", 42, 40, 2},
		{"empty partition", 0, 0, 0},
		// The high watermark is read after the committed offset, but a retention cleanup or a
		// commit in between must never yield a negative lag.
		{"committed ahead of a stale watermark", 40, 42, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lag(c.highWatermark, c.next); got != c.want {
				t.Errorf("lag(%d, %d) = %d, want %d", c.highWatermark, c.next, got, c.want)
			}
		})
	}
}

func TestLagGaugeReportsOnlyGroupsStillSubscribed(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := newLagMonitor(nil, nil, 1, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	posts := groupTopic{"notification.posts", "posts"}
	users := groupTopic{"notification.users", "users"}
	m.add(posts)
	m.add(posts) // a second subscription of the same group and topic
	m.add(users)
	m.readings = []lagReading{{posts, 0, 3}, {posts, 1, 0}, {users, 2, 7}}

	if got := collectLag(t, reader); len(got) != 3 || got["notification.posts/posts/0"] != 3 || got["notification.users/users/2"] != 7 {
		t.Fatalf("lag = %v, want all three readings", got)
	}
	m.remove(users)
	m.remove(posts)
	got := collectLag(t, reader)
	if _, ok := got["notification.users/users/2"]; ok || len(got) != 2 {
		t.Fatalf("lag = %v: a group no longer subscribed is still reported, or one still subscribed is not", got)
	}
}

// collectLag returns the gauge's points keyed group/topic/partition.
func collectLag(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != LagMetric {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				g, _ := dp.Attributes.Value("group")
				tp, _ := dp.Attributes.Value("topic")
				p, _ := dp.Attributes.Value("partition")
				out[g.AsString()+"/"+tp.AsString()+"/"+p.String()] = dp.Value
			}
		}
	}
	return out
}

func TestLagIntervalDefaultsAndMustBePositive(t *testing.T) {
	cfg := Config{Brokers: []string{"localhost:9092"}}
	cfg.setDefaults()
	if cfg.LagInterval != 5*time.Second || cfg.MeterProvider == nil {
		t.Fatalf("defaults: LagInterval %s, MeterProvider %v", cfg.LagInterval, cfg.MeterProvider)
	}
	cfg.LagInterval = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate accepted a negative LagInterval")
	}
}
