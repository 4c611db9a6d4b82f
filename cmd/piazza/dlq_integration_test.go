//go:build integration

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/kafkabus"
	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/services/deadletter"
)

func TestDLQReplaysFromThePostgresArchiveThroughKafka(t *testing.T) {
	url := infratest.NewPostgresDatabase(t)
	brokers := infratest.KafkaBrokers(t)
	db := databasetest.Open(t, url)
	if err := deadletter.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	svc, err := deadletter.New(deadletter.Config{}, deadletter.Deps{DB: db}, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic := "dlq_replay_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	e := seedEntry(t, svc.App(), topic, []byte(`{"id":"e1"}`))

	bus, err := kafkabus.New(kafkabus.Config{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	sub, err := bus.Subscriber("dlq_watcher_" + uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"PIAZZA_DEADLETTER_DATABASE_URL": url, "PIAZZA_KAFKA_BROKERS": strings.Join(brokers, ",")}
	out, errOut, err := runDLQTest(t, env, "replay", e.ID)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, errOut)
	}
	if !strings.HasPrefix(out, "replayed "+e.ID) {
		t.Errorf("replay printed %q", out)
	}
	select {
	case m := <-msgs:
		m.Ack()
		if m.UUID != e.MessageID || string(m.Payload) != `{"id":"e1"}` {
			t.Errorf("replayed message %s %s, want %s with the original payload", m.UUID, m.Payload, e.MessageID)
		}
		for k, want := range originalMetadata {
			if got := m.Metadata.Get(k); got != want {
				t.Errorf("replayed metadata %s = %q, want %q", k, got, want)
			}
		}
		if got := m.Metadata.Get(events.MetadataPoisonTopic); got != "" {
			t.Errorf("replayed message still carries the failure record (%s = %q)", events.MetadataPoisonTopic, got)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the replayed message did not arrive on Kafka within 60s")
	}

	out, errOut, err = runDLQTest(t, env, "list", "--topic", topic)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, e.ID) || !strings.Contains(out, "1x, last") {
		t.Errorf("list after the replay does not show it replayed:\n%s", out)
	}
}
