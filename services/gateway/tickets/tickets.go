// Package tickets holds the gateway's one-time event-stream tickets: a browser's EventSource
// cannot send an Authorization header, so a client exchanges its access token for a short-lived
// ticket (POST /v1/events/ticket) and opens GET /v1/events?ticket=<id>. A ticket is redeemed at
// most once, by whichever gateway instance the stream lands on.
//
// Two stores implement [Store]: [Memory] for one process (the embedded default and unit tests)
// and [Redis] for gateway instances that share a Redis. Both pass ticketstest.Run.
package tickets

import (
	"context"
	"errors"
	"time"
)

// Ticket is what a ticket stands for: the session it was issued in.
type Ticket struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	// ExpiresAt is when the access token the ticket was issued for expires: the stream it opens
	// ends then, as a stream opened with the token itself would.
	ExpiresAt time.Time `json:"expires_at"`
}

var (
	// ErrNotFound is returned by Take for a ticket that was never issued, has expired or was
	// already redeemed; the three are deliberately indistinguishable.
	ErrNotFound = errors.New("tickets: no such ticket")
	// ErrExists is returned by Put when the id is already taken by a live ticket.
	ErrExists = errors.New("tickets: ticket id in use")
)

// Store keeps tickets until they are redeemed or expire.
type Store interface {
	// Put stores t under id for ttl (> 0), unless a live ticket has that id (ErrExists).
	Put(ctx context.Context, id string, t Ticket, ttl time.Duration) error
	// Take redeems the ticket id: it returns it and removes it atomically, so that of several
	// concurrent takers at most one gets it. Unknown, expired and redeemed ids are ErrNotFound.
	Take(ctx context.Context, id string) (Ticket, error)
}

func checkPut(id string, ttl time.Duration) error {
	switch {
	case id == "":
		return errors.New("tickets: empty ticket id")
	case ttl <= 0:
		return errors.New("tickets: ttl must be positive")
	}
	return nil
}
