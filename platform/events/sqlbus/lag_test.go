package sqlbus_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/piazza-social/piazza/platform/events/sqlbus"
)

func TestConsumerLagCountsWhatTheGroupHasNotAcked(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	b := newBus(t, sqlbus.Config{
		Path:          filepath.Join(t.TempDir(), "events.db"),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	if got := collectLag(t, reader); len(got) != 0 {
		t.Fatalf("lag %v before any group consumes", got)
	}
	sub, ch := subscribe(t, b, "notification.posts", "posts")
	for _, body := range []string{"1", "2", "3", "4"} {
		if err := b.Publish("posts", msg("one-author", body)); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, ch).Ack()
	receive(t, ch) // in flight, not acked

	deadline := time.Now().Add(wait)
	for {
		got := collectLag(t, reader)
		total, onOne := int64(0), false
		for _, v := range got {
			total += v
			onOne = onOne || v == 3
		}
		if len(got) == sqlbus.Partitions && total == 3 && onOne {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag = %v, want 3 on the author's partition and 0 on the %d others", got, sqlbus.Partitions-1)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if got := collectLag(t, reader); len(got) != 0 {
		t.Fatalf("lag still reported for a group no longer consuming here: %v", got)
	}
}

// collectLag returns the lag gauge's points keyed group/topic/partition.
func collectLag(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != sqlbus.LagMetric {
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
