package push_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/push"
	"github.com/piazza-social/piazza/platform/push/pushtest"
)

func TestMemoryMeetsTheContract(t *testing.T) {
	pushtest.Run(t, func(t *testing.T) (push.Publisher, push.Subscriber) {
		m := newMemory(t, push.MemoryConfig{})
		return m, m
	})
}

func newMemory(t *testing.T, cfg push.MemoryConfig) *push.Memory {
	t.Helper()
	m, err := push.NewMemory(cfg, nil)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	return m
}

func TestChannelIsTheRealtimeContractsChannel(t *testing.T) {
	if got, want := push.Channel("gw-1"), realtimev1.Channel("gw-1"); got != want {
		t.Fatalf("push.Channel = %q, realtimev1.Channel = %q", got, want)
	}
}

// droppedCount reads the push.dropped counter of instance from reader.
func droppedCount(t *testing.T, reader *sdkmetric.ManualReader, instance string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "push.dropped" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if v, ok := dp.Attributes.Value("push.instance"); ok && v.AsString() == instance {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestMemoryDropsAndCountsWhatASlowReceiverCannotTake(t *testing.T) {
	ctx := t.Context()
	reader := sdkmetric.NewManualReader()
	m := newMemory(t, push.MemoryConfig{Buffer: 4, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	ch, err := m.Subscribe(ctx, "gw-a")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := m.Publish(ctx, "gw-a", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := droppedCount(t, reader, "gw-a"); got != 6 {
		t.Fatalf("push.dropped = %d after 10 messages into a buffer of 4, want 6", got)
	}
	// The oldest messages are kept, in order: the receiver resumes where it stalled.
	for i := range 4 {
		if m := <-ch; m[0] != byte(i) {
			t.Fatalf("message %d is %d, want %d", i, m[0], i)
		}
	}
}

func TestNewMemoryRejectsNegativeSettings(t *testing.T) {
	for _, cfg := range []push.MemoryConfig{{Buffer: -1}, {LogInterval: -1}} {
		if _, err := push.NewMemory(cfg, nil); err == nil {
			t.Errorf("NewMemory(%+v) succeeded", cfg)
		}
	}
}

func TestNewRedisRequiresAClient(t *testing.T) {
	if _, err := push.NewRedis(push.RedisConfig{}, nil); err == nil {
		t.Fatal("NewRedis without a client succeeded")
	}
}

// BenchmarkMemoryPublishToReceive measures one message from Publish to the subscriber.
func BenchmarkMemoryPublishToReceive(b *testing.B) {
	m, err := push.NewMemory(push.MemoryConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkPublishToReceive(b, m, m)
}

func benchmarkPublishToReceive(b *testing.B, pub push.Publisher, sub push.Subscriber) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, "gw-bench")
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 512) // about one delivery batch
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Publish(ctx, "gw-bench", msg); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}
