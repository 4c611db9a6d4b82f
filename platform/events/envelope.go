package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// MetadataEventType is the metadata key carrying the envelope's event type, so that routing and
// filtering need not decode the payload.
const MetadataEventType = "event_type"

// CurrentSchemaVersion is the envelope schema version New stamps. A producer that changes the
// shape of an event's payload incompatibly raises its event's version, not this default.
const CurrentSchemaVersion = 1

// Envelope is a domain event as it travels on the bus. Its JSON form is the message payload.
type Envelope struct {
	// ID identifies the event (a UUIDv7, so ids sort by creation time). It is also the message
	// UUID, which is what consumers deduplicate on.
	ID string `json:"id"`
	// Type names the event, "<aggregate>.<past-tense verb>", e.g. "post.created".
	Type string `json:"type"`
	// OccurredAt is when the fact happened, in UTC.
	OccurredAt time.Time `json:"occurred_at"`
	// Producer is the name of the service that emitted the event.
	Producer string `json:"producer"`
	// AggregateID is the entity the event is about; it is the partition key, so events of one
	// aggregate are consumed in order.
	AggregateID string `json:"aggregate_id"`
	// SchemaVersion is the version of Payload's shape for this Type, starting at 1.
	SchemaVersion int `json:"schema_version"`
	// Payload is the event body as JSON.
	Payload json.RawMessage `json:"payload"`
}

// New builds an envelope with a fresh UUIDv7 id, the current time and schema version
// CurrentSchemaVersion; payload is marshalled to JSON.
func New(eventType, aggregateID, producer string, payload any) (Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, fmt.Errorf("events: generate event id: %w", err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: marshal %s payload: %w", eventType, err)
	}
	env := Envelope{
		ID:            id.String(),
		Type:          eventType,
		OccurredAt:    time.Now().UTC(),
		Producer:      producer,
		AggregateID:   aggregateID,
		SchemaVersion: CurrentSchemaVersion,
		Payload:       body,
	}
	if err := env.Validate(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// ErrMalformedEnvelope is wrapped by every error that reports an invalid envelope.
var ErrMalformedEnvelope = errors.New("malformed event envelope")

// Validate reports whether every field of the envelope is set and well-formed.
func (e Envelope) Validate() error {
	var problems []string
	if _, err := uuid.Parse(e.ID); err != nil {
		problems = append(problems, fmt.Sprintf("id %q is not a UUID", e.ID))
	}
	if e.Type == "" {
		problems = append(problems, "type is empty")
	}
	if e.OccurredAt.IsZero() {
		problems = append(problems, "occurred_at is missing")
	}
	if e.Producer == "" {
		problems = append(problems, "producer is empty")
	}
	if e.AggregateID == "" {
		problems = append(problems, "aggregate_id is empty")
	}
	if e.SchemaVersion < 1 {
		problems = append(problems, fmt.Sprintf("schema_version %d is below 1", e.SchemaVersion))
	}
	switch {
	case len(e.Payload) == 0 || string(e.Payload) == "null":
		// null is what marshalling a nil pointer gives: a bug, not an event body.
		problems = append(problems, "payload is missing")
	case !json.Valid(e.Payload):
		problems = append(problems, "payload is not valid JSON")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMalformedEnvelope, strings.Join(problems, "; "))
}

// DecodePayload unmarshals the payload into v. A payload that does not fit v is a poison
// message for the caller, so the error is marked Permanent.
func (e Envelope) DecodePayload(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return Permanent(fmt.Errorf("events: decode %s v%d payload of event %s: %w", e.Type, e.SchemaVersion, e.ID, err))
	}
	return nil
}

// NewMessage turns the envelope into a watermill message: the message UUID is the event id, the
// payload is the envelope's JSON, and the metadata carries MetadataEventType, PartitionKey (the
// aggregate id) and the trace context and baggage of ctx, injected with prop (nil means
// otel.GetTextMapPropagator()).
func NewMessage(ctx context.Context, env Envelope, prop propagation.TextMapPropagator) (*message.Message, error) {
	if err := env.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("events: marshal envelope %s: %w", env.ID, err)
	}
	msg := message.NewMessage(env.ID, body)
	msg.Metadata.Set(MetadataEventType, env.Type)
	msg.Metadata.Set(PartitionKey, env.AggregateID)
	InjectContext(ctx, msg, prop)
	return msg, nil
}

// Decode reads the envelope out of a message. Any error wraps ErrMalformedEnvelope and is
// Permanent: a message that cannot be decoded now never will be, so it is not retried.
func Decode(msg *message.Message) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		return Envelope{}, Permanent(fmt.Errorf("events: message %s: %w: %v", msg.UUID, ErrMalformedEnvelope, err))
	}
	if err := env.Validate(); err != nil {
		return Envelope{}, Permanent(fmt.Errorf("events: message %s: %w", msg.UUID, err))
	}
	if env.ID != msg.UUID {
		return Envelope{}, Permanent(fmt.Errorf("events: message %s: %w: envelope id %s differs from message UUID",
			msg.UUID, ErrMalformedEnvelope, env.ID))
	}
	return env, nil
}

// MetadataCarrier adapts watermill message metadata to an OpenTelemetry TextMapCarrier.
type MetadataCarrier message.Metadata

var _ propagation.TextMapCarrier = MetadataCarrier{}

// Get returns the value stored under key, or "".
func (c MetadataCarrier) Get(key string) string { return c[key] }

// Set stores value under key.
func (c MetadataCarrier) Set(key, value string) { c[key] = value }

// Keys lists the keys stored in the carrier.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectContext writes the trace context and baggage of ctx into msg's metadata with prop (nil
// means otel.GetTextMapPropagator()).
func InjectContext(ctx context.Context, msg *message.Message, prop propagation.TextMapPropagator) {
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	prop.Inject(ctx, MetadataCarrier(msg.Metadata))
}

// ContextFromMessage returns ctx enriched with the trace context and baggage found in msg's
// metadata, extracted with prop (nil means otel.GetTextMapPropagator()). A span started from the
// result is a child of the producer's span.
func ContextFromMessage(ctx context.Context, msg *message.Message, prop propagation.TextMapPropagator) context.Context {
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	return prop.Extract(ctx, MetadataCarrier(msg.Metadata))
}
