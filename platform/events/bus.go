// Package events holds what every service shares about domain events: the envelope, the
// propagation of trace context through message metadata, the router that runs handlers with
// bounded retries and a poison queue, and the event-bus port that the Kafka and embedded
// adapters implement.
package events

import "github.com/ThreeDotsLabs/watermill/message"

// Bus is the event-bus port. A process holds one Bus; it publishes through the Bus itself and
// takes one Subscriber per consumer group.
//
// Contract, checked for every adapter by eventstest.RunBusContract:
//   - every consumer group receives every message published after it first subscribed;
//   - within a group each message is handled by one subscriber at a time, and messages with the
//     same partition key (metadata key PartitionKey) are delivered in publish order;
//   - delivery is at-least-once: a message is gone for a group only after its handler acked it;
//     a nacked message, or one left unacked when a subscriber closes, is delivered again;
//   - message UUID, metadata and payload arrive unchanged.
type Bus interface {
	message.Publisher
	// Subscriber returns a subscriber that consumes as the consumer group named group.
	Subscriber(group string) (message.Subscriber, error)
}

// PartitionKey is the metadata key whose value decides ordering: messages with the same key are
// delivered in order. Producers set it to the aggregate id (author, conversation, user).
const PartitionKey = "partition_key"
