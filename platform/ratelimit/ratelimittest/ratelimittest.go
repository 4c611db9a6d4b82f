// Package ratelimittest holds the contract suite every ratelimit.Limiter adapter passes.
package ratelimittest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/ratelimit"
)

// Run runs the ratelimit.Limiter contract. newLimiter(t) returns a limiter with no state for
// the keys the tests use (a fresh limiter, or one with a key prefix of its own). The tests run
// on the real clock; they take at most a few hundred milliseconds of waiting.
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, l ratelimit.Limiter)
	}{
		{"BurstIsAllowedThenTheNextIsDenied", testBurstThenDenied},
		{"DeniedRequestsAreNotCounted", testDeniedNotCounted},
		{"KeysAreIndependent", testKeysIndependent},
		{"KeyIsAllowedAgainAfterRetryAfter", testAllowedAfterRetryAfter},
		{"ConcurrentCallersNeverExceedTheBurst", testConcurrentBurst},
		{"InvalidLimitsAreRejected", testInvalidLimits},
		{"EmptyKeyIsRejected", testEmptyKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newLimiter(t)) })
	}
}

// slow is a limit under which nothing refills during a test.
var slow = ratelimit.Limit{Rate: 2, Period: 2 * time.Hour, Burst: 3}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func allow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Result {
	t.Helper()
	res, err := l.Allow(ctxFor(t), key, lim)
	if err != nil {
		t.Fatalf("Allow(%q, %s): %v", key, lim, err)
	}
	return res
}

// exhaust spends the whole burst of key, checking the countdown of Remaining.
func exhaust(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) {
	t.Helper()
	for i := range lim.Burst {
		res := allow(t, l, key, lim)
		if !res.Allowed {
			t.Fatalf("request %d of a burst of %d was denied (%+v)", i+1, lim.Burst, res)
		}
		if want := lim.Burst - 1 - i; res.Remaining != want {
			t.Errorf("request %d: Remaining = %d, want %d", i+1, res.Remaining, want)
		}
		if res.RetryAfter != 0 {
			t.Errorf("request %d: allowed with RetryAfter %s, want 0", i+1, res.RetryAfter)
		}
	}
}

func testBurstThenDenied(t *testing.T, l ratelimit.Limiter) {
	exhaust(t, l, "burst", slow)
	res := allow(t, l, "burst", slow)
	if res.Allowed {
		t.Fatalf("request %d was allowed, want it denied after a burst of %d", slow.Burst+1, slow.Burst)
	}
	interval := slow.Period / time.Duration(slow.Rate)
	if res.RetryAfter <= 0 || res.RetryAfter > interval {
		t.Errorf("RetryAfter = %s, want in (0, %s] (one emission interval, never more than Period %s)",
			res.RetryAfter, interval, slow.Period)
	}
	if res.Remaining != 0 {
		t.Errorf("denied with Remaining %d, want 0", res.Remaining)
	}
}

func testDeniedNotCounted(t *testing.T, l ratelimit.Limiter) {
	exhaust(t, l, "denied", slow)
	first := allow(t, l, "denied", slow)
	for range 5 {
		allow(t, l, "denied", slow)
	}
	again := allow(t, l, "denied", slow)
	if first.Allowed || again.Allowed {
		t.Fatalf("allowed after the burst: first %+v, again %+v", first, again)
	}
	// Time only moves forward, so a limiter that did not count the denials can only have come
	// closer to the next slot.
	if again.RetryAfter > first.RetryAfter {
		t.Errorf("RetryAfter grew from %s to %s across denied requests: denials were counted", first.RetryAfter, again.RetryAfter)
	}
}

func testKeysIndependent(t *testing.T, l ratelimit.Limiter) {
	exhaust(t, l, "alice", slow)
	if res := allow(t, l, "alice", slow); res.Allowed {
		t.Fatal("alice was allowed past her burst")
	}
	res := allow(t, l, "bob", slow)
	if !res.Allowed || res.Remaining != slow.Burst-1 {
		t.Fatalf("bob's first request = %+v, want allowed with Remaining %d: keys share state", res, slow.Burst-1)
	}
}

func testAllowedAfterRetryAfter(t *testing.T, l ratelimit.Limiter) {
	quick := ratelimit.Limit{Rate: 20, Period: time.Second, Burst: 2} // one slot every 50 ms
	// Spend requests until one is denied; a slow machine may see a slot refill meanwhile, so
	// the count is not asserted here (BurstIsAllowedThenTheNextIsDenied does that).
	var denied ratelimit.Result
	for i := 0; ; i++ {
		if denied = allow(t, l, "retry", quick); !denied.Allowed {
			break
		}
		if i == 1000 {
			t.Fatal("never denied")
		}
	}
	// Denied requests are free (see DeniedRequestsAreNotCounted), so polling cannot delay the
	// slot; the deadline is generous because only eventual admission is the contract here.
	const grace = 10 * time.Second
	deadline := time.Now().Add(denied.RetryAfter + grace)
	for {
		res := allow(t, l, "retry", quick)
		if res.Allowed {
			return
		}
		if res.RetryAfter <= 0 {
			t.Fatalf("denied with RetryAfter %s, want > 0", res.RetryAfter)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still denied %s after RetryAfter %s (last: %+v)", grace, denied.RetryAfter, res)
		}
		time.Sleep(min(res.RetryAfter, 5*time.Millisecond))
	}
}

func testConcurrentBurst(t *testing.T, l ratelimit.Limiter) {
	lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 7}
	const callers = 64
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
		errs    []error
		start   = make(chan struct{})
	)
	ctx := ctxFor(t)
	for range callers {
		wg.Go(func() {
			<-start
			res, err := l.Allow(ctx, "crowd", lim)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if res.Allowed {
				allowed++
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Allow failed: %v", err)
	}
	if allowed != lim.Burst {
		t.Fatalf("%d of %d concurrent callers were allowed, want exactly the burst %d", allowed, callers, lim.Burst)
	}
}

func testInvalidLimits(t *testing.T, l ratelimit.Limiter) {
	for i, lim := range []ratelimit.Limit{
		{},
		{Rate: 0, Period: time.Second, Burst: 1},
		{Rate: -1, Period: time.Second, Burst: 1},
		{Rate: 1, Period: 0, Burst: 1},
		{Rate: 1, Period: -time.Second, Burst: 1},
		{Rate: 1, Period: time.Second, Burst: 0},
		{Rate: 1, Period: time.Second, Burst: -3},
		{Rate: 10, Period: 5 * time.Nanosecond, Burst: 1},
	} {
		res, err := l.Allow(ctxFor(t), "invalid-"+strconv.Itoa(i), lim)
		if !errors.Is(err, ratelimit.ErrInvalidLimit) {
			t.Errorf("Allow with %+v = %+v, %v; want ErrInvalidLimit", lim, res, err)
		}
		if res.Allowed {
			t.Errorf("Allow with %+v allowed the request", lim)
		}
	}
}

func testEmptyKey(t *testing.T, l ratelimit.Limiter) {
	if _, err := l.Allow(ctxFor(t), "", slow); !errors.Is(err, ratelimit.ErrEmptyKey) {
		t.Fatalf("Allow with an empty key: %v, want ErrEmptyKey", err)
	}
}
