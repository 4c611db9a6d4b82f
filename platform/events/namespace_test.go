package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/platform/events"
)

// recordingBus records the names it is asked for.
type recordingBus struct {
	published []string
	groups    []string
	topics    []string
}

func (b *recordingBus) Publish(topic string, _ ...*message.Message) error {
	b.published = append(b.published, topic)
	return nil
}
func (b *recordingBus) Close() error { return nil }
func (b *recordingBus) Subscriber(group string) (message.Subscriber, error) {
	b.groups = append(b.groups, group)
	return recordingSub{b}, nil
}

type recordingSub struct{ b *recordingBus }

func (s recordingSub) Subscribe(_ context.Context, topic string) (<-chan *message.Message, error) {
	s.b.topics = append(s.b.topics, topic)
	return make(chan *message.Message), nil
}
func (recordingSub) Close() error { return nil }

func TestNamespacedPrefixesTopicsAndGroupsOnTheWireOnly(t *testing.T) {
	inner := &recordingBus{}
	bus := events.Namespaced(inner, "staging.")
	if err := bus.Publish("posts"); err != nil {
		t.Fatal(err)
	}
	sub, err := bus.Subscriber("notification-service")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "dead_letters"); err != nil {
		t.Fatal(err)
	}
	if inner.published[0] != "staging.posts" || inner.groups[0] != "staging.notification-service" || inner.topics[0] != "staging.dead_letters" {
		t.Fatalf("wire names %v %v %v", inner.published, inner.groups, inner.topics)
	}
	if events.Namespaced(inner, "") != events.Bus(inner) {
		t.Fatal("an empty prefix must return the bus itself")
	}
}
