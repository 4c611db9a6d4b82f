package tickets_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/gateway/tickets"
	"github.com/piazza-social/piazza/services/gateway/tickets/ticketstest"
)

func TestMemoryMeetsTheContract(t *testing.T) {
	ticketstest.Run(t, func(*testing.T) tickets.Store { return tickets.NewMemory(tickets.MemoryConfig{}) })
}

func TestMemoryTicketExpiresAtItsTTLOnTheConfiguredClock(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := tickets.NewMemory(tickets.MemoryConfig{Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := m.Put(ctx, id, tickets.Ticket{UserID: "u"}, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(30*time.Second - time.Nanosecond)
	if _, err := m.Take(ctx, "a"); err != nil {
		t.Fatalf("just before the TTL: %v", err)
	}
	now = now.Add(time.Nanosecond)
	if _, err := m.Take(ctx, "b"); err != tickets.ErrNotFound {
		t.Fatalf("at the TTL: %v, want ErrNotFound", err)
	}
	// An expired id may be issued again.
	if err := m.Put(ctx, "b", tickets.Ticket{UserID: "u"}, time.Second); err != nil {
		t.Fatalf("Put over an expired ticket: %v", err)
	}
}

func TestMemoryForgetsExpiredTicketsThatAreNeverTaken(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := tickets.NewMemory(tickets.MemoryConfig{Now: func() time.Time { return now }})
	ctx := context.Background()
	// Many generations of tickets that nobody redeems: each expires before the next.
	for gen := range 50 {
		for i := range 100 {
			if err := m.Put(ctx, strconv.Itoa(gen)+"-"+strconv.Itoa(i), tickets.Ticket{}, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(2 * time.Second)
	}
	if n := m.Len(); n > 400 {
		t.Fatalf("%d tickets held after 5000 expired ones; expired tickets are not dropped", n)
	}
}
