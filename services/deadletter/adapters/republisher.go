package adapters

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// Republisher puts replayed messages back on the bus.
type Republisher struct {
	pub message.Publisher
}

// NewRepublisher returns a republisher publishing through pub, usually the process's
// events.Bus.
func NewRepublisher(pub message.Publisher) (*Republisher, error) {
	if pub == nil {
		return nil, errors.New("deadletter: republisher needs a publisher")
	}
	return &Republisher{pub: pub}, nil
}

// Republish publishes l to topic as a message with l's UUID, metadata and payload, and returns
// once the bus has accepted it. The metadata goes out as it is, so the message keeps its
// partition key (and so its place among its aggregate's events) and the trace context of the
// request that first produced it.
func (r *Republisher) Republish(ctx context.Context, topic string, l domain.Letter) error {
	msg := message.NewMessage(l.UUID, l.Payload)
	msg.Metadata = message.Metadata(maps.Clone(l.Metadata))
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	msg.SetContext(ctx)
	if err := r.pub.Publish(topic, msg); err != nil {
		return fmt.Errorf("republish %s to %s: %w", l.UUID, topic, err)
	}
	return nil
}
