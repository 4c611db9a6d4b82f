// Package ratelimit is the rate-limit port and its two adapters: Memory, in process (the
// embedded mode, and one instance's own limits), and Redis, shared by every instance that talks
// to the same Redis (the distributed mode, where a limit must hold across gateway replicas).
//
// Both implement GCRA (the generic cell rate algorithm), so they answer alike: a Limit lets
// Burst requests through at once, then one every Period/Rate; a denied request costs nothing
// and does not push the next allowed time further. Every adapter passes the contract suite in
// ratelimittest.
//
// What to do when the limiter fails (Redis unreachable) is the caller's choice; Allow returns
// the error. The recommendation for the public API: do not fail closed (a Redis outage would
// lock every user out of login) and do not fail fully open (a brute-force run during an
// outage would be unthrottled); degrade to per-instance limits instead, which is what Fallback
// does with a Memory limiter behind the Redis one.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limit is a GCRA limit: Burst requests may happen at once, then Rate requests per Period, one
// every Period/Rate. For example {Rate: 5, Period: time.Minute, Burst: 10} lets ten attempts
// through back to back, then one every 12 seconds.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// ErrInvalidLimit is wrapped by the error of Allow for a Limit that Validate rejects.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// ErrEmptyKey is returned by Allow for an empty key: it almost always means the caller failed
// to work out whom it is limiting (a missing client address), and one shared empty key would
// limit everybody together.
var ErrEmptyKey = errors.New("ratelimit: empty key")

// Validate reports whether l is usable: Rate, Burst and Period positive, Period/Rate at least a
// nanosecond, and Burst*Period/Rate representable as a time.Duration.
func (l Limit) Validate() error {
	switch {
	case l.Rate < 1:
		return fmt.Errorf("%w: rate %d is below 1", ErrInvalidLimit, l.Rate)
	case l.Burst < 1:
		return fmt.Errorf("%w: burst %d is below 1", ErrInvalidLimit, l.Burst)
	case l.Period <= 0:
		return fmt.Errorf("%w: period %s is not positive", ErrInvalidLimit, l.Period)
	}
	interval := l.interval()
	if interval <= 0 {
		return fmt.Errorf("%w: period %s / rate %d is below a nanosecond", ErrInvalidLimit, l.Period, l.Rate)
	}
	if int64(interval) > math.MaxInt64/int64(l.Burst) {
		return fmt.Errorf("%w: burst %d × %s overflows", ErrInvalidLimit, l.Burst, interval)
	}
	return nil
}

// interval is the GCRA emission interval: the time one request "costs".
func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// String renders l as "5/1m0s burst 10".
func (l Limit) String() string { return fmt.Sprintf("%d/%s burst %d", l.Rate, l.Period, l.Burst) }

// Result is the answer to one Allow call.
type Result struct {
	// Allowed reports whether the request may proceed (and was counted).
	Allowed bool
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// RetryAfter is, for a denied request, how long until one request will be allowed
	// (0 < RetryAfter ≤ Period/Rate); it is 0 when Allowed.
	RetryAfter time.Duration
}

// Limiter decides whether the request identified by key is within limit l, and counts it if
// it is. Keys are independent of each other. Implementations are safe for concurrent use; a
// request denied is not counted. An invalid l yields an error wrapping ErrInvalidLimit, an
// empty key ErrEmptyKey.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

func checkRequest(key string, l Limit) error {
	if key == "" {
		return ErrEmptyKey
	}
	return l.Validate()
}
