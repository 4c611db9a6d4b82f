// Package push is the port of the second hop of real-time delivery: a message addressed to one
// gateway instance, published by notification-service and received only by that instance.
// Distributed, it is Redis Pub/Sub on the channel `gateway_events:<instance_id>` (Redis);
// embedded, an in-process fan-out (Memory). Both pass the contract suite in pushtest.
//
// Delivery is best effort by design (Pub/Sub keeps nothing for an absent subscriber, nor for
// one that cannot keep up): correctness comes from the durable inbox, which a gateway replays
// on reconnect and whenever it sees a gap in a user's sequence numbers.
//
// Backpressure: a subscription's channel is bounded, and neither adapter ever blocks on it.
// When the receiver has not taken the previous Buffer messages, a new one is dropped and
// counted in the counter push.dropped (attribute push.instance), and a warning is logged at
// most once per LogInterval with the number dropped since the last one. A publisher is never
// slowed down by a slow receiver, and the Redis reader never stalls (which would make Redis
// disconnect the subscriber once its output buffer overflows).
package push

import (
	"context"
	"errors"
)

// ChannelPrefix is the prefix of a gateway instance's channel, gateway_events:<instance_id>
// (the same name as api/realtimev1.ChannelPrefix, which the library cannot import).
const ChannelPrefix = "gateway_events:"

// Channel returns the channel of a gateway instance.
func Channel(instanceID string) string { return ChannelPrefix + instanceID }

// Publisher sends a message to one gateway instance.
type Publisher interface {
	Publish(ctx context.Context, instanceID string, msg []byte) error
}

// Subscriber receives the messages addressed to one gateway instance.
type Subscriber interface {
	// Subscribe returns the messages for instanceID until ctx is done, then closes the channel.
	// It returns once the subscription is active: a message published after Subscribe
	// returned reaches it. The receiver must keep up; an adapter may drop messages for a
	// receiver that does not (counting them), never block its publishers.
	Subscribe(ctx context.Context, instanceID string) (<-chan []byte, error)
}

// ErrEmptyInstance is returned by Publish and Subscribe for an empty instance id.
var ErrEmptyInstance = errors.New("push: empty instance id")

// DefaultBuffer is the default capacity of a subscription's channel.
const DefaultBuffer = 1024

func bufferOf(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultBuffer, nil
	case n < 0:
		return 0, errors.New("push: Buffer must not be negative")
	}
	return n, nil
}
