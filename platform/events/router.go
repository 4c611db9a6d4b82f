package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// DeadLetterTopic is the topic that receives messages whose handler gave up on them: after the
// last retry, or at once for a Permanent error. The message keeps its UUID, payload and
// metadata, and gains the MetadataPoison* keys.
const DeadLetterTopic = "dead_letters"

// Metadata keys that a dead-lettered message carries besides its original metadata. The first
// three are watermill's own poison-queue keys.
const (
	// MetadataPoisonReason is the text of the last error.
	MetadataPoisonReason = middleware.ReasonForPoisonedKey
	// MetadataPoisonTopic is the topic the message was consumed from.
	MetadataPoisonTopic = middleware.PoisonedTopicKey
	// MetadataPoisonHandler is the name of the handler that failed.
	MetadataPoisonHandler = middleware.PoisonedHandlerKey
	// MetadataPoisonAttempts is how many times the handler ran, in decimal.
	MetadataPoisonAttempts = "attempts_poisoned"
	// MetadataPoisonFirstFailure is when the first attempt failed, RFC 3339 with nanoseconds, UTC.
	MetadataPoisonFirstFailure = "first_failure_poisoned"
	// MetadataPoisonLastFailure is when the last attempt failed, in the same format.
	MetadataPoisonLastFailure = "last_failure_poisoned"
)

// RetryPolicy bounds how a failing handler is retried before its message is dead-lettered.
// Waits grow exponentially: InitialInterval, InitialInterval*Multiplier, ... capped at MaxInterval.
type RetryPolicy struct {
	// MaxAttempts is how many times the handler runs in all, the first run included; default 5.
	MaxAttempts int
	// InitialInterval is the wait before the second attempt; default 100ms.
	InitialInterval time.Duration
	// MaxInterval caps the wait between attempts; default 10s.
	MaxInterval time.Duration
	// Multiplier scales the wait after each attempt; default 2.
	Multiplier float64
}

func (p *RetryPolicy) setDefaults() {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 5
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = 100 * time.Millisecond
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 10 * time.Second
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
}

func (p RetryPolicy) validate() error {
	var errs []error
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d is below 1", p.MaxAttempts))
	}
	if p.InitialInterval < 0 || p.MaxInterval < 0 {
		errs = append(errs, errors.New("retry intervals must not be negative"))
	}
	if p.MaxInterval < p.InitialInterval {
		errs = append(errs, fmt.Errorf("max interval %s is below initial interval %s", p.MaxInterval, p.InitialInterval))
	}
	if p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("multiplier %g is below 1", p.Multiplier))
	}
	return errors.Join(errs...)
}

// RouterConfig configures a Router.
type RouterConfig struct {
	// DeadLetters publishes dead-lettered messages to DeadLetterTopic. Required; usually the Bus.
	DeadLetters message.Publisher
	// Retry bounds the retries of a failing handler; zero fields take their defaults.
	Retry RetryPolicy
	// CloseTimeout is how long Run waits, once ctx is cancelled, for handlers in flight;
	// default 30s.
	CloseTimeout time.Duration
	// TracerProvider makes the consumer spans; nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the router's instruments; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator reads the producer's trace context out of message metadata; nil means
	// otel.GetTextMapPropagator().
	Propagator propagation.TextMapPropagator
	// Decorate, when set, wraps every handler added to the router (innermost, around the
	// handler itself): a place for cross-cutting behaviour such as fault injection in
	// end-to-end tests, without touching the services' handlers.
	Decorate func(name string, h Handler) Handler
}

// Handler handles one event. ctx carries the consumer span (a child of the producer's span)
// and is cancelled when the router shuts down. Returning nil acks the message. An error is
// retried as RouterConfig.Retry says, then the message is dead-lettered; an error marked with
// Permanent is dead-lettered at once. Delivery is at-least-once, so a handler must be idempotent.
type Handler func(ctx context.Context, ev Envelope) error

// Router runs event handlers, each consuming one topic through its own subscriber, with this
// middleware, outermost first:
//
//  1. observation: the consumer span, the outcome log line and the handled/poisoned counters;
//  2. the dead-letter queue (watermill's PoisonQueue): a message whose retries are exhausted, or
//     whose error is Permanent, is published to DeadLetterTopic and then acked, so the partition
//     moves on;
//  3. retry with bounded exponential backoff (watermill's Retry);
//  4. per-attempt accounting: the attempt count and failure times that the dead letter carries,
//     the failed counter, the duration histogram, and a log line and span event per failure;
//  5. panic recovery (watermill's Recoverer), innermost, so that a panicking handler is retried
//     and dead-lettered like a failing one instead of being redelivered forever;
//  6. envelope decoding: a malformed envelope is a Permanent error.
//
// A message whose handling is cut short by shutdown is neither acked nor dead-lettered: it is
// delivered again later.
type Router struct {
	wm      *message.Router
	log     *slog.Logger
	retry   RetryPolicy
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	metrics routerMetrics
	// decorate wraps each added handler (RouterConfig.Decorate).
	decorate func(name string, h Handler) Handler

	mu       sync.Mutex
	handlers map[string]bool
}

// NewRouter validates cfg, fills its defaults and builds a Router with no handlers. A nil log
// discards the router's logs.
func NewRouter(cfg RouterConfig, log *slog.Logger) (*Router, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DeadLetters == nil {
		return nil, errors.New("events: RouterConfig.DeadLetters is required")
	}
	cfg.Retry.setDefaults()
	if err := cfg.Retry.validate(); err != nil {
		return nil, fmt.Errorf("events: RouterConfig.Retry: %w", err)
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 30 * time.Second
	}
	if cfg.CloseTimeout < 0 {
		return nil, fmt.Errorf("events: RouterConfig.CloseTimeout %s is negative", cfg.CloseTimeout)
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	metrics, err := newRouterMetrics(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}

	// watermill logs every subscription and router state change at Info; they are start-up and
	// shutdown detail here, so they go to Debug. Its errors stay errors.
	wmLog := watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, wmLog)
	if err != nil {
		return nil, fmt.Errorf("events: new router: %w", err)
	}
	r := &Router{
		wm:       wm,
		log:      log,
		retry:    cfg.Retry,
		tracer:   cfg.TracerProvider.Tracer(instrumentationName),
		prop:     cfg.Propagator,
		metrics:  metrics,
		handlers: map[string]bool{},
		decorate: cfg.Decorate,
	}

	poison, err := middleware.PoisonQueueWithFilter(cfg.DeadLetters, DeadLetterTopic, isDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("events: poison queue: %w", err)
	}
	// The retried function gets the context the message had on entering Retry (the one holding
	// the consumer span and the delivery record), even if an attempt replaced it.
	retry := middleware.Retry{
		MaxRetries:          cfg.Retry.MaxAttempts - 1,
		InitialInterval:     cfg.Retry.InitialInterval,
		MaxInterval:         cfg.Retry.MaxInterval,
		Multiplier:          cfg.Retry.Multiplier,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
		ResetContextOnRetry: true,
	}
	wm.AddMiddleware(r.observe, poison, r.markDeadLetter, retry.Middleware, r.countAttempt, middleware.Recoverer)
	return r, nil
}

// AddHandler registers h under name (unique within the router; it names the handler in logs,
// metrics and dead letters) to consume topic through sub. sub should be the Bus's subscriber
// for the consumer group of this handler; the router closes it on shutdown. Handlers must be
// added before Run.
func (r *Router) AddHandler(name, topic string, sub message.Subscriber, h Handler) error {
	switch {
	case name == "":
		return errors.New("events: handler name is empty")
	case topic == "":
		return fmt.Errorf("events: handler %s: topic is empty", name)
	case sub == nil:
		return fmt.Errorf("events: handler %s: subscriber is nil", name)
	case h == nil:
		return fmt.Errorf("events: handler %s: handler func is nil", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handlers[name] {
		return fmt.Errorf("events: handler %s is already registered", name)
	}
	r.handlers[name] = true
	if r.decorate != nil {
		h = r.decorate(name, h)
	}
	r.wm.AddConsumerHandler(name, topic, sub, func(msg *message.Message) error {
		env, err := Decode(msg)
		if err != nil {
			return err
		}
		return h(msg.Context(), env)
	})
	return nil
}

// Running is closed once every handler has subscribed.
func (r *Router) Running() <-chan struct{} { return r.wm.Running() }

// Run subscribes every handler and processes messages until ctx is cancelled; then it waits up
// to CloseTimeout for the handlers in flight and returns. It returns an error if subscribing
// fails, if every handler stopped on its own (their subscribers closed), or on close timeout.
// A Router runs once.
func (r *Router) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil // cancelled before start: subscribe nothing
	}
	closeErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			closeErr <- r.wm.Close()
		case <-stop:
			closeErr <- nil
		}
	}()
	// The subscriptions get a context that shutdown does not cancel: shutdown goes through
	// Close, which lets the handlers in flight finish within CloseTimeout.
	err := r.wm.Run(context.WithoutCancel(ctx))
	close(stop)
	if cerr := <-closeErr; cerr != nil {
		err = errors.Join(err, fmt.Errorf("close: %w", cerr))
	}
	if err == nil && ctx.Err() == nil {
		err = errors.New("stopped: every handler's subscription ended")
	}
	// Close is idempotent; it releases the subscriptions when Run failed or stopped on its own.
	_ = r.wm.Close()
	if err != nil {
		return fmt.Errorf("events: router: %w", err)
	}
	return nil
}
