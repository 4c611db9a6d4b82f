//go:build integration

package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/cassandra"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
	"github.com/piazza-social/piazza/services/messaging"
)

// Distributed mode end to end: the keyspace migrated by cassandra.Migrate (as the
// messaging-migration job does), a session from cassandra.Open, and the service's Run
// forwarding the pending events to the bus.
func TestEventsLeaveThroughTheCassandraForwarderKeyedByTheConversation(t *testing.T) {
	hosts, keyspace := cassandratest.NewKeyspace(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := cassandra.Migrate(ctx, admin, messaging.CassandraMigrations, keyspace, cassandra.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	session, err := cassandra.Open(ctx, cassandra.Config{Hosts: hosts, Keyspace: keyspace}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(session.Close) // after Run stopped: cleanups run last first
	pub := newPublisher()
	svc, err := messaging.New(messaging.Config{}, messaging.Deps{Cassandra: session, Publisher: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	checkEventFlow(t, svc, func() []*message.Message { return pub.published(eventsv1.TopicMessages) })
}
