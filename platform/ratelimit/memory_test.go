package ratelimit_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/platform/ratelimit/ratelimittest"
)

func TestMemoryMeetsTheContract(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter { return newMemory(t, ratelimit.MemoryConfig{}) })
}

func newMemory(t *testing.T, cfg ratelimit.MemoryConfig) *ratelimit.Memory {
	t.Helper()
	m, err := ratelimit.NewMemory(cfg)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	return m
}

// clock is a fake clock that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func mustAllow(t *testing.T, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Result {
	t.Helper()
	res, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return res
}

func TestMemoryFollowsGCRAExactly(t *testing.T) {
	clk := newClock()
	m := newMemory(t, ratelimit.MemoryConfig{Now: clk.Now})
	lim := ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 10} // one slot every 12 s

	type step struct {
		advance   time.Duration
		allowed   bool
		remaining int
		retry     time.Duration
	}
	steps := []step{}
	for i := range 10 {
		steps = append(steps, step{allowed: true, remaining: 9 - i})
	}
	steps = append(steps,
		step{allowed: false, retry: 12 * time.Second},
		step{advance: 5 * time.Second, allowed: false, retry: 7 * time.Second},
		step{advance: 7 * time.Second, allowed: true, remaining: 0},
		step{allowed: false, retry: 12 * time.Second},
		// Three intervals later three slots are back: this one and two more.
		step{advance: 36 * time.Second, allowed: true, remaining: 2},
		// Long idle: the whole burst is back, not more.
		step{advance: time.Hour, allowed: true, remaining: 9},
	)
	for i, s := range steps {
		clk.Advance(s.advance)
		got := mustAllow(t, m, "k", lim)
		want := ratelimit.Result{Allowed: s.allowed, Remaining: s.remaining, RetryAfter: s.retry}
		if got != want {
			t.Fatalf("step %d (+%s): got %+v, want %+v", i, s.advance, got, want)
		}
	}
}

func TestMemoryDropsKeysThatHaveFullyRecovered(t *testing.T) {
	clk := newClock()
	m := newMemory(t, ratelimit.MemoryConfig{Now: clk.Now, SweepInterval: time.Minute})
	lim := ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1}
	for i := range 500 {
		mustAllow(t, m, "client-"+strconv.Itoa(i), lim)
	}
	if got := m.Len(); got != 500 {
		t.Fatalf("Len = %d after 500 keys, want 500", got)
	}
	// Every key recovered after one second; the shards sweep on their next use after the
	// sweep interval. One request per shard is enough to reach them all with this many keys.
	clk.Advance(time.Minute)
	for i := range 500 {
		mustAllow(t, m, "fresh-"+strconv.Itoa(i), ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1})
	}
	if got := m.Len(); got != 500 {
		t.Fatalf("Len = %d, want 500: the recovered keys were not dropped", got)
	}
}

func TestMemoryNeverTracksMoreThanMaxKeys(t *testing.T) {
	clk := newClock()
	const maxKeys = 100
	m := newMemory(t, ratelimit.MemoryConfig{Now: clk.Now, MaxKeys: maxKeys})
	lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1} // nothing recovers
	for i := range 10 * maxKeys {
		if res := mustAllow(t, m, "spray-"+strconv.Itoa(i), lim); !res.Allowed {
			t.Fatalf("a new key was denied when the table was full: %+v", res)
		}
		if got := m.Len(); got > maxKeys {
			t.Fatalf("Len = %d after %d keys, want at most %d", got, i+1, maxKeys)
		}
	}
}

func TestNewMemoryRejectsNegativeSettings(t *testing.T) {
	for _, cfg := range []ratelimit.MemoryConfig{{MaxKeys: -1}, {SweepInterval: -time.Second}} {
		if _, err := ratelimit.NewMemory(cfg); err == nil {
			t.Errorf("NewMemory(%+v) succeeded", cfg)
		}
	}
}

// failing is a Limiter that always fails, like a Redis limiter during an outage.
type failing struct{ err error }

func (f failing) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, f.err
}

func TestFallbackEnforcesLocalLimitsWhilePrimaryFails(t *testing.T) {
	primary := &switchable{}
	local := newMemory(t, ratelimit.MemoryConfig{})
	f, err := ratelimit.NewFallback(ratelimit.FallbackConfig{Primary: primary, Secondary: local}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 2}

	primary.set(failing{errors.New("dial tcp: connection refused")})
	for i := range 2 {
		if res := mustAllow(t, f, "ip", lim); !res.Allowed {
			t.Fatalf("request %d denied during the outage, want the local burst allowed", i+1)
		}
	}
	if res := mustAllow(t, f, "ip", lim); res.Allowed {
		t.Fatal("request past the local burst was allowed: the fallback failed open")
	}
	if !f.Degraded() {
		t.Error("Degraded() = false while the primary fails")
	}

	primary.set(newMemory(t, ratelimit.MemoryConfig{}))
	if res := mustAllow(t, f, "ip", lim); !res.Allowed || res.Remaining != 1 {
		t.Fatalf("after recovery got %+v, want the primary's fresh answer", res)
	}
	if f.Degraded() {
		t.Error("Degraded() = true after the primary answered")
	}
}

func TestFallbackPassesInvalidRequestsThrough(t *testing.T) {
	f, err := ratelimit.NewFallback(ratelimit.FallbackConfig{
		Primary:   newMemory(t, ratelimit.MemoryConfig{}),
		Secondary: failing{errors.New("secondary must not be asked")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Allow(context.Background(), "k", ratelimit.Limit{}); !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("invalid limit: %v, want ErrInvalidLimit from the primary", err)
	}
}

// switchable delegates to a limiter that the test can swap.
type switchable struct {
	mu sync.Mutex
	l  ratelimit.Limiter
}

func (s *switchable) set(l ratelimit.Limiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l = l
}

func (s *switchable) Allow(ctx context.Context, key string, lim ratelimit.Limit) (ratelimit.Result, error) {
	s.mu.Lock()
	l := s.l
	s.mu.Unlock()
	return l.Allow(ctx, key, lim)
}

func BenchmarkMemoryAllow(b *testing.B) {
	m, err := ratelimit.NewMemory(ratelimit.MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	lim := ratelimit.Limit{Rate: 1000, Period: time.Second, Burst: 1000}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := m.Allow(ctx, keys[i%len(keys)], lim); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
