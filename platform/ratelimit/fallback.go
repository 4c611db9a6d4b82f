package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
)

// FallbackConfig configures a Fallback limiter.
type FallbackConfig struct {
	// Primary decides while it works, typically a Redis limiter. Required.
	Primary Limiter
	// Secondary decides while Primary fails, typically a Memory limiter, so that limits are
	// enforced per instance during an outage. Required.
	Secondary Limiter
}

// Fallback asks Primary and, when Primary fails with anything but an invalid request or the
// caller's cancellation, Secondary. It logs once when it starts falling back and once when
// Primary answers again, not on every request.
type Fallback struct {
	primary, secondary Limiter
	log                *slog.Logger
	degraded           atomic.Bool
}

var _ Limiter = (*Fallback)(nil)

// NewFallback returns a Fallback limiter. log may be nil.
func NewFallback(cfg FallbackConfig, log *slog.Logger) (*Fallback, error) {
	if cfg.Primary == nil || cfg.Secondary == nil {
		return nil, errors.New("ratelimit: FallbackConfig needs Primary and Secondary")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fallback{primary: cfg.Primary, secondary: cfg.Secondary, log: log}, nil
}

// Allow implements Limiter.
func (f *Fallback) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	res, err := f.primary.Allow(ctx, key, l)
	switch {
	case err == nil:
		if f.degraded.CompareAndSwap(true, false) {
			f.log.InfoContext(ctx, "rate limiter recovered; limits are shared again")
		}
		return res, nil
	case errors.Is(err, ErrInvalidLimit), errors.Is(err, ErrEmptyKey), ctx.Err() != nil:
		return res, err
	}
	if f.degraded.CompareAndSwap(false, true) {
		f.log.WarnContext(ctx, "rate limiter failed; enforcing per-instance limits until it recovers", "error", err)
	}
	return f.secondary.Allow(ctx, key, l)
}

// Degraded reports whether Primary failed on its most recent call, i.e. whether limits are
// currently per instance (for status reports and tests).
func (f *Fallback) Degraded() bool { return f.degraded.Load() }
