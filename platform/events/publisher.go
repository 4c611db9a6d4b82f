package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/piazza-social/piazza/platform/events"

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Publisher is where messages go, usually the process's Bus. Required.
	Publisher message.Publisher
	// TracerProvider makes the producer spans; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into message metadata; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Publisher publishes envelopes, each in a producer span whose context travels in the message
// metadata, so that the consumer's span is its child.
type Publisher struct {
	pub    message.Publisher
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewPublisher validates cfg and fills its defaults.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Publisher == nil {
		return nil, errors.New("events: PublisherConfig.Publisher is required")
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	return &Publisher{
		pub:    cfg.Publisher,
		tracer: cfg.TracerProvider.Tracer(instrumentationName),
		prop:   cfg.Propagator,
	}, nil
}

// Publish sends the envelopes to topic in order, stopping at the first failure. It returns once
// the bus has accepted them (for Kafka: once the broker acknowledged them).
func (p *Publisher) Publish(ctx context.Context, topic string, envs ...Envelope) error {
	for _, env := range envs {
		if err := p.publishOne(ctx, topic, env); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) publishOne(ctx context.Context, topic string, env Envelope) error {
	ctx, span := p.tracer.Start(ctx, "send "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.message.id", env.ID),
			attribute.String(attrEventType, env.Type),
		))
	defer span.End()

	msg, err := NewMessage(ctx, env, p.prop)
	if err == nil {
		err = p.pub.Publish(topic, msg)
	}
	if err != nil {
		err = fmt.Errorf("events: publish %s %s to %s: %w", env.Type, env.ID, topic, err)
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	return nil
}
