//go:build integration

package kafkabus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/platform/logging"
)

func TestConsumerLagFollowsTheGroupsCommittedOffsets(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	bus, err := New(Config{
		Brokers: infratest.KafkaBrokers(t), ClientID: "piazza-lag-test", LagInterval: 50 * time.Millisecond, TopicPartitions: 3,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	suffix := time.Now().Format("150405.000000000")
	topic, group := "lag-test-"+suffix, "lag-test-group-"+suffix

	// Five records of one key: all on one partition, in order.
	for i := range 5 {
		m := message.NewMessage(fmt.Sprintf("%s-%d", suffix, i), []byte("{}"))
		m.Metadata.Set(events.PartitionKey, "one-aggregate")
		if err := bus.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := bus.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}

	// Two acked, the third held: the group has three records left on that partition and
	// none on the others.
	for i := range 3 {
		select {
		case m := <-msgs:
			if i < 2 {
				m.Ack()
			}
		case <-ctx.Done():
			t.Fatalf("record %d never arrived", i)
		}
	}
	var got map[string]int64
	for {
		got = collectLag(t, reader)
		total, onOne := int64(0), false
		for _, v := range got {
			total += v
			onOne = onOne || v == 3
		}
		if len(got) == 3 && total == 3 && onOne {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lag = %v, want 3 on one partition of %s and 0 on the two others", got, topic)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for key := range got {
		if want := group + "/" + topic + "/"; key[:len(want)] != want {
			t.Errorf("reading %s is not of group %s on topic %s", key, group, topic)
		}
	}

	// Once the subscription is closed, the group is no longer reported by this process.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if got := collectLag(t, reader); len(got) != 0 {
		t.Fatalf("lag still reported after the subscription closed: %v", got)
	}
}
