package presence_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/presence/presencetest"
)

func TestMemoryMeetsTheContract(t *testing.T) {
	presencetest.RunWithClock(t, func(t *testing.T, now func() time.Time) presence.Store {
		return newMemory(t, presence.MemoryConfig{Now: now})
	})
}

func newMemory(t *testing.T, cfg presence.MemoryConfig) *presence.Memory {
	t.Helper()
	m, err := presence.NewMemory(cfg)
	if err != nil {
		t.Fatalf("NewMemory: %v", err)
	}
	return m
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

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

func TestMemorySweepsExpiredConnectionsOfEveryUser(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newMemory(t, presence.MemoryConfig{Now: clk.Now, SweepInterval: 5 * time.Minute})
	for i := range 100 {
		c := presence.Connection{UserID: "u" + strconv.Itoa(i), ConnectionID: "c", InstanceID: "gw-crashed"}
		if _, err := m.Register(ctx, c, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 100 {
		t.Fatalf("Len = %d after 100 registrations, want 100", got)
	}
	// Past the TTL but before the sweep interval: invisible, still in memory.
	clk.Advance(2 * time.Minute)
	if on, _ := m.Online(ctx, "u1"); on {
		t.Fatal("an expired connection is still online")
	}
	survivor := presence.Connection{UserID: "survivor", ConnectionID: "c", InstanceID: "gw-ok"}
	if _, err := m.Register(ctx, survivor, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := m.Len(); got != 101 {
		t.Fatalf("Len = %d before the sweep interval, want 101", got)
	}
	// The next write after the sweep interval drops every expired user.
	clk.Advance(5 * time.Minute)
	if err := m.Refresh(ctx, survivor, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := m.Len(); got != 1 {
		t.Fatalf("Len = %d after the sweep, want 1 (only the live user)", got)
	}
}

func TestNewMemoryRejectsANegativeSweepInterval(t *testing.T) {
	if _, err := presence.NewMemory(presence.MemoryConfig{SweepInterval: -time.Second}); err == nil {
		t.Fatal("NewMemory accepted a negative SweepInterval")
	}
}

func TestNewRedisRequiresAClient(t *testing.T) {
	if _, err := presence.NewRedis(presence.RedisConfig{}); err == nil {
		t.Fatal("NewRedis without a client succeeded")
	}
}

// BenchmarkMemoryRoutes measures one routing lookup of a fan-out batch: 1000 users, a third
// of them online.
func BenchmarkMemoryRoutes(b *testing.B) {
	m, err := presence.NewMemory(presence.MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkRoutes(b, m)
}

func benchmarkRoutes(b *testing.B, s presence.Store) {
	ctx := context.Background()
	users := make([]string, 1000)
	for i := range users {
		users[i] = "bench-user-" + strconv.Itoa(i)
		if i%3 == 0 {
			c := presence.Connection{UserID: users[i], ConnectionID: "c", InstanceID: "gw-" + strconv.Itoa(i%4)}
			if _, err := s.Register(ctx, c, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Routes(ctx, users)
		if err != nil || len(r) != 334 {
			b.Fatalf("Routes: %d routed, %v", len(r), err)
		}
	}
}
