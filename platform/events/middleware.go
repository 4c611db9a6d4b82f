package events

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Span attribute keys beyond the OpenTelemetry messaging conventions.
const (
	attrEventType = "piazza.event.type"
	attrHandler   = "piazza.event.handler"
)

// delivery records one delivery of a message through the middleware chain. watermill's Retry
// and PoisonQueue keep no such record, which the dead letter needs (attempt count, first and
// last failure time) and so does the outcome log; it travels in the message context.
type delivery struct {
	attempts     int
	firstFailure time.Time
	lastFailure  time.Time
	// deadLettered holds the error for which the message was handed to the poison queue.
	deadLettered error
}

type deliveryKey struct{}

func deliveryFrom(ctx context.Context) *delivery {
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		return d
	}
	// Only reachable if the chain is assembled without observe; a throwaway record keeps the
	// other middleware total.
	return &delivery{}
}

// deadLetterError is how markDeadLetter tells the poison queue to take a message: only errors
// wrapped in it are dead-lettered, all others are nacked and redelivered.
type deadLetterError struct{ err error }

func (d deadLetterError) Error() string { return d.err.Error() }
func (d deadLetterError) Unwrap() error { return d.err }

func isDeadLetter(err error) bool {
	var d deadLetterError
	return errors.As(err, &d)
}

// observe is the outermost middleware: it opens the consumer span as a child of the producer's
// span, creates the delivery record, and reports the outcome in the span, a log line and the
// handled/poisoned counters.
func (r *Router) observe(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		topic := message.SubscribeTopicFromCtx(msg.Context())
		handler := message.HandlerNameFromCtx(msg.Context())
		eventType := msg.Metadata.Get(MetadataEventType)

		parent := ContextFromMessage(msg.Context(), msg, r.prop)
		ctx, span := r.tracer.Start(parent, "process "+topic,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String(attrEventType, eventType),
				attribute.String(attrHandler, handler),
			))
		defer span.End()
		d := &delivery{}
		msg.SetContext(context.WithValue(ctx, deliveryKey{}, d))

		produced, err := h(msg)

		counterAttrs := metric.WithAttributes(attribute.String("topic", topic), attribute.String("handler", handler))
		logAttrs := []any{"topic", topic, "handler", handler, "event_id", msg.UUID, "event_type", eventType, "attempts", d.attempts}
		switch {
		case err != nil:
			// Not acked: the bus delivers the message again (shutdown cut the retries short, or
			// the dead letter could not be published).
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			r.log.WarnContext(ctx, "event not handled, left for redelivery", append(logAttrs, "error", err)...)
		case d.deadLettered != nil:
			r.metrics.poisoned.Add(ctx, 1, counterAttrs)
			span.SetAttributes(attribute.Bool("piazza.event.dead_lettered", true))
			span.SetStatus(codes.Error, "dead-lettered: "+d.deadLettered.Error())
			r.log.ErrorContext(ctx, "event dead-lettered",
				append(logAttrs, "dead_letter_topic", DeadLetterTopic, "permanent", IsPermanent(d.deadLettered), "error", d.deadLettered)...)
		default:
			r.metrics.handled.Add(ctx, 1, counterAttrs)
			r.log.DebugContext(ctx, "event handled", logAttrs...)
		}
		return produced, err
	}
}

// markDeadLetter sits between the poison queue and Retry. When Retry gives up for good (the
// attempts are used up or the error is Permanent) it writes the failure record into the
// metadata and marks the error for the poison queue, which adds the reason, topic and handler
// keys and publishes the message. If Retry stopped because the message context ended
// (shutdown), the message is left for redelivery instead.
func (r *Router) markDeadLetter(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		d := deliveryFrom(msg.Context())
		exhausted := d.attempts >= r.retry.MaxAttempts
		if msg.Context().Err() != nil || !(exhausted || IsPermanent(err)) {
			return produced, err
		}
		msg.Metadata.Set(MetadataPoisonAttempts, strconv.Itoa(d.attempts))
		msg.Metadata.Set(MetadataPoisonFirstFailure, d.firstFailure.UTC().Format(time.RFC3339Nano))
		msg.Metadata.Set(MetadataPoisonLastFailure, d.lastFailure.UTC().Format(time.RFC3339Nano))
		d.deadLettered = err
		return produced, deadLetterError{err: err}
	}
}

// countAttempt runs once per attempt, inside Retry: it numbers the attempt, times it, and
// records a failure in the delivery record, the failed counter, the span and the log.
func (r *Router) countAttempt(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		d := deliveryFrom(ctx)
		d.attempts++
		topic := message.SubscribeTopicFromCtx(ctx)
		handler := message.HandlerNameFromCtx(ctx)

		start := time.Now()
		produced, err := h(msg)
		elapsed := time.Since(start)

		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		r.metrics.duration.Record(ctx, elapsed.Seconds(), metric.WithAttributes(
			attribute.String("topic", topic), attribute.String("handler", handler), attribute.String("outcome", outcome)))
		if err == nil {
			return produced, nil
		}

		now := time.Now()
		if d.firstFailure.IsZero() {
			d.firstFailure = now
		}
		d.lastFailure = now
		r.metrics.failed.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", topic), attribute.String("handler", handler)))
		trace.SpanFromContext(ctx).RecordError(err, trace.WithAttributes(attribute.Int("piazza.event.attempt", d.attempts)))
		r.log.WarnContext(ctx, "event handler failed",
			"topic", topic, "handler", handler, "event_id", msg.UUID,
			"attempt", d.attempts, "max_attempts", r.retry.MaxAttempts, "permanent", IsPermanent(err), "error", err)
		return produced, err
	}
}
