// Package ticketstest holds the contract suite every tickets.Store passes.
package ticketstest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/gateway/tickets"
)

// Run runs the tickets.Store contract. newStore(t) returns a store with no tickets under the ids
// the tests use (a fresh store, or one with a key prefix of its own). The tests run on the real
// clock; the expiry test waits a few hundred milliseconds.
func Run(t *testing.T, newStore func(t *testing.T) tickets.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s tickets.Store)
	}{
		{"TakeReturnsWhatPutStored", testRoundTrip},
		{"ATicketIsRedeemedOnlyOnce", testSingleUse},
		{"AnUnknownTicketIsNotFound", testUnknown},
		{"AnExpiredTicketIsNotFound", testExpired},
		{"PutRefusesTheIdOfALiveTicket", testExists},
		{"OfConcurrentTakersExactlyOneWins", testConcurrentTake},
		{"TicketsAreIndependent", testIndependent},
		{"InvalidPutsAreRejected", testInvalidPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var sample = tickets.Ticket{
	UserID:    "u-1",
	SessionID: "s-1",
	ExpiresAt: time.Date(2031, 2, 3, 4, 5, 6, 789_000_000, time.UTC),
}

func put(t *testing.T, s tickets.Store, id string, tk tickets.Ticket, ttl time.Duration) {
	t.Helper()
	if err := s.Put(ctxFor(t), id, tk, ttl); err != nil {
		t.Fatalf("Put(%q): %v", id, err)
	}
}

func wantNotFound(t *testing.T, s tickets.Store, id string) {
	t.Helper()
	if tk, err := s.Take(ctxFor(t), id); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("Take(%q) = %+v, %v; want ErrNotFound", id, tk, err)
	}
}

func testRoundTrip(t *testing.T, s tickets.Store) {
	put(t, s, "round-trip", sample, time.Minute)
	got, err := s.Take(ctxFor(t), "round-trip")
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	if got.UserID != sample.UserID || got.SessionID != sample.SessionID || !got.ExpiresAt.Equal(sample.ExpiresAt) {
		t.Fatalf("Take = %+v, want %+v", got, sample)
	}
}

func testSingleUse(t *testing.T, s tickets.Store) {
	put(t, s, "once", sample, time.Minute)
	if _, err := s.Take(ctxFor(t), "once"); err != nil {
		t.Fatalf("first Take: %v", err)
	}
	wantNotFound(t, s, "once")
}

func testUnknown(t *testing.T, s tickets.Store) {
	wantNotFound(t, s, "never-issued")
}

func testExpired(t *testing.T, s tickets.Store) {
	const ttl = 100 * time.Millisecond
	put(t, s, "short", sample, ttl)
	put(t, s, "long", sample, time.Minute)
	// Nothing can be awaited here: looking at a ticket redeems it. Wait out the TTL.
	time.Sleep(3 * ttl)
	wantNotFound(t, s, "short")
	if _, err := s.Take(ctxFor(t), "long"); err != nil {
		t.Fatalf("a ticket within its TTL: %v", err)
	}
}

func testExists(t *testing.T, s tickets.Store) {
	put(t, s, "taken", sample, time.Minute)
	other := tickets.Ticket{UserID: "u-2", SessionID: "s-2", ExpiresAt: sample.ExpiresAt}
	if err := s.Put(ctxFor(t), "taken", other, time.Minute); !errors.Is(err, tickets.ErrExists) {
		t.Fatalf("second Put = %v, want ErrExists", err)
	}
	got, err := s.Take(ctxFor(t), "taken")
	if err != nil || got.UserID != sample.UserID {
		t.Fatalf("Take = %+v, %v; the first ticket must stay", got, err)
	}
}

func testConcurrentTake(t *testing.T, s tickets.Store) {
	put(t, s, "contested", sample, time.Minute)
	const takers = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	start := make(chan struct{})
	for range takers {
		wg.Go(func() {
			<-start
			_, err := s.Take(ctxFor(t), "contested")
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, tickets.ErrNotFound):
				t.Errorf("Take: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent takers got the ticket, want exactly 1", wins, takers)
	}
}

func testIndependent(t *testing.T, s tickets.Store) {
	for i := range 3 {
		tk := sample
		tk.UserID = "u-" + strconv.Itoa(i)
		put(t, s, "t-"+strconv.Itoa(i), tk, time.Minute)
	}
	if _, err := s.Take(ctxFor(t), "t-1"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		got, err := s.Take(ctxFor(t), "t-"+strconv.Itoa(i))
		if err != nil || got.UserID != "u-"+strconv.Itoa(i) {
			t.Fatalf("t-%d: %+v, %v", i, got, err)
		}
	}
}

func testInvalidPut(t *testing.T, s tickets.Store) {
	if err := s.Put(ctxFor(t), "", sample, time.Minute); err == nil {
		t.Error("Put with an empty id succeeded")
	}
	if err := s.Put(ctxFor(t), "no-ttl", sample, 0); err == nil {
		t.Error("Put with a zero TTL succeeded")
	}
	wantNotFound(t, s, "no-ttl")
}
