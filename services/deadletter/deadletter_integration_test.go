//go:build integration

package deadletter_test

import (
	"testing"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/infratest"
)

func TestArchiveEndToEndOnKafkaAndPostgres(t *testing.T) {
	runSuite(t, func(t *testing.T) testEnv {
		bus, err := kafkabus.New(kafkabus.Config{Brokers: infratest.KafkaBrokers(t)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close() })
		return testEnv{bus: bus, db: databasetest.Open(t, infratest.NewPostgresDatabase(t))}
	})
}
