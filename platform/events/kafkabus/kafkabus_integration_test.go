//go:build integration

package kafkabus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/eventstest"
	"github.com/piazza-social/piazza/platform/infratest"
)

func TestKafkaBusPassesTheBusContract(t *testing.T) {
	brokers := infratest.KafkaBrokers(t)
	eventstest.RunBusContract(t, func(t *testing.T) events.Bus {
		bus, err := New(Config{Brokers: brokers, ClientID: "piazza-contract-test"}, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() {
			if err := bus.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return bus
	})
}

func TestPingSucceedsAgainstTheTestBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Ping(ctx, infratest.KafkaBrokers(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// BenchmarkPublish publishes 20 messages of 20 keys in one call, as a forwarder's round does.
func BenchmarkPublish(b *testing.B) {
	bus, err := New(Config{Brokers: infratest.KafkaBrokers(b), ClientID: "piazza-bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	topic := "bench-publish-" + uuid.NewString()
	msgs := make([]*message.Message, 20)
	for b.Loop() {
		for i := range msgs {
			msgs[i] = message.NewMessage(uuid.NewString(), []byte(`{"n":1}`))
			msgs[i].Metadata.Set(events.PartitionKey, fmt.Sprint("conversation-", i))
		}
		if err := bus.Publish(topic, msgs...); err != nil {
			b.Fatal(err)
		}
	}
}
