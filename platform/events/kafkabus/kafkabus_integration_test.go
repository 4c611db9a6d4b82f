//go:build integration

package kafkabus

import (
	"context"
	"testing"
	"time"

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
