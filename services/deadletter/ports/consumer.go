// Package ports holds the dead-letter archive's entry point from the bus: the consumer of the
// dead-letter topic that archives every message arriving there.
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// Archiver stores a dead letter; app.Application implements it. An error means the letter was
// not stored and may be on a retry.
type Archiver interface {
	Archive(ctx context.Context, l domain.Letter) (domain.Entry, bool, error)
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Subscriber consumes the dead-letter topic, as the archive's consumer group. Required; the
	// consumer closes it when Run returns.
	Subscriber message.Subscriber
	// Archiver stores what arrives. Required.
	Archiver Archiver
	// RetryInitialInterval is the wait before archiving a message again after the store
	// failed; it doubles after each failure up to RetryMaxInterval. Defaults 100ms and 30s.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// TracerProvider makes the consumer spans; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator reads the original producer's trace context out of the dead letter, so the
	// archive's span and log lines join the trace of the request that failed; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
}

// Consumer archives every message of the dead-letter topic.
//
// It deliberately does not run under events.Router: the router decodes envelopes and
// dead-letters what fails, and a dead letter that failed here would be sent back to the very
// topic this consumer reads, forever. Instead a dead letter is stored as it is (which cannot
// fail on its content), and a store failure is retried with backoff for as long as it takes:
// the message is acked only once archived, and nacked (left for redelivery) if shutdown comes
// first. Messages are archived one at a time, in the order the bus delivers them.
type Consumer struct {
	cfg     ConsumerConfig
	log     *slog.Logger
	tracer  trace.Tracer
	running chan struct{}
}

// NewConsumer validates cfg and fills its defaults. A nil log discards the consumer's logs.
func NewConsumer(cfg ConsumerConfig, log *slog.Logger) (*Consumer, error) {
	if cfg.Subscriber == nil || cfg.Archiver == nil {
		return nil, errors.New("deadletter: ConsumerConfig.Subscriber and Archiver are required")
	}
	if cfg.RetryInitialInterval == 0 {
		cfg.RetryInitialInterval = 100 * time.Millisecond
	}
	if cfg.RetryMaxInterval == 0 {
		cfg.RetryMaxInterval = 30 * time.Second
	}
	if cfg.RetryInitialInterval < 0 || cfg.RetryMaxInterval < cfg.RetryInitialInterval {
		return nil, errors.New("deadletter: retry intervals must be positive, the maximum not below the initial")
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{
		cfg:     cfg,
		log:     log,
		tracer:  cfg.TracerProvider.Tracer("github.com/piazza-social/piazza/services/deadletter"),
		running: make(chan struct{}),
	}, nil
}

// Running is closed once the consumer has subscribed: dead letters published from then on will
// be archived (on the embedded bus a new consumer group starts at the end of the topic).
func (c *Consumer) Running() <-chan struct{} { return c.running }

// Run subscribes to the dead-letter topic and archives its messages until ctx is cancelled, then
// closes the subscriber and returns nil. It returns an error if subscribing fails or the
// subscription ends on its own. A Consumer runs once.
func (c *Consumer) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := c.cfg.Subscriber.Close(); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("deadletter: close subscriber: %w", cerr)
		}
	}()
	msgs, err := c.cfg.Subscriber.Subscribe(ctx, events.DeadLetterTopic)
	if err != nil {
		return fmt.Errorf("deadletter: subscribe to %s: %w", events.DeadLetterTopic, err)
	}
	close(c.running)
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("deadletter: subscription to %s ended", events.DeadLetterTopic)
			}
			c.handle(ctx, msg)
		}
	}
}

// handle archives msg, retrying store failures until it succeeds or ctx ends, and acks it, or
// nacks it on shutdown.
func (c *Consumer) handle(ctx context.Context, msg *message.Message) {
	parent := events.ContextFromMessage(ctx, msg, c.cfg.Propagator)
	sctx, span := c.tracer.Start(parent, "process "+events.DeadLetterTopic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", events.DeadLetterTopic),
			attribute.String("messaging.message.id", msg.UUID),
		))
	defer span.End()

	l := domain.Letter{UUID: msg.UUID, Metadata: maps.Clone(map[string]string(msg.Metadata)), Payload: msg.Payload}
	wait := c.cfg.RetryInitialInterval
	for attempt := 1; ; attempt++ {
		_, _, err := c.cfg.Archiver.Archive(sctx, l)
		if err == nil {
			msg.Ack()
			return
		}
		span.RecordError(err, trace.WithAttributes(attribute.Int("piazza.deadletter.attempt", attempt)))
		c.log.WarnContext(sctx, "archiving a dead letter failed, will retry",
			"message_id", msg.UUID, "attempt", attempt, "retry_in", wait, "error", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			span.SetStatus(codes.Error, "shutdown before the dead letter was archived")
			msg.Nack()
			return
		case <-timer.C:
		}
		wait = min(2*wait, c.cfg.RetryMaxInterval)
	}
}
