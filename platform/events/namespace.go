package events

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Namespaced returns a Bus that keeps one deployment's events apart from another's on a shared
// broker: every topic and every consumer group gets prefix (e.g. "staging."). Services keep
// using the plain names (`posts`, `dead_letters`, `notification-service`); the prefix exists
// only on the wire. An empty prefix returns bus itself.
func Namespaced(bus Bus, prefix string) Bus {
	if prefix == "" {
		return bus
	}
	return &namespaced{bus: bus, prefix: prefix}
}

type namespaced struct {
	bus    Bus
	prefix string
}

func (n *namespaced) Publish(topic string, msgs ...*message.Message) error {
	return n.bus.Publish(n.prefix+topic, msgs...)
}

func (n *namespaced) Close() error { return n.bus.Close() }

func (n *namespaced) Subscriber(group string) (message.Subscriber, error) {
	sub, err := n.bus.Subscriber(n.prefix + group)
	if err != nil {
		return nil, err
	}
	return &namespacedSubscriber{sub: sub, prefix: n.prefix}, nil
}

type namespacedSubscriber struct {
	sub    message.Subscriber
	prefix string
}

func (s *namespacedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.sub.Subscribe(ctx, s.prefix+topic)
}

func (s *namespacedSubscriber) Close() error { return s.sub.Close() }
