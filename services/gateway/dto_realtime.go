package gateway

import (
	"time"

	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
)

// The bodies of the inbox, presence and event-stream routes. A notification is
// realtimev1.Notification, the one shape clients get from the inbox and the stream alike.

type unreadCountResponse struct {
	Count   int64 `json:"count"`
	LastSeq int64 `json:"last_seq"`
}

// markReadRequest moves the read marker up to UpToSeq; a pointer, so that a missing member is
// told apart from 0.
type markReadRequest struct {
	UpToSeq *int64 `json:"up_to_seq"`
}

func (r *markReadRequest) validate() error {
	var c fieldCheck
	switch {
	case r.UpToSeq == nil:
		c.add("/up_to_seq", "is required")
	case *r.UpToSeq < 0:
		c.add("/up_to_seq", "must not be negative")
	}
	return c.err()
}

type presenceResponse struct {
	Online bool `json:"online"`
	// LastSeenAt is null for a user never seen online.
	LastSeenAt *time.Time `json:"last_seen_at"`
}

type sessionResponse struct {
	ConnectionID   string     `json:"connection_id"`
	InstanceID     string     `json:"instance_id"`
	ConnectedAt    time.Time  `json:"connected_at"`
	DisconnectedAt *time.Time `json:"disconnected_at"` // null while the connection is open
}

func toSession(s *presencev1.Session) sessionResponse {
	r := sessionResponse{
		ConnectionID: s.GetConnectionId(),
		InstanceID:   s.GetInstanceId(),
		ConnectedAt:  s.GetConnectedAt().AsTime().UTC().Truncate(time.Second),
	}
	if s.GetDisconnectedAt() != nil {
		t := s.GetDisconnectedAt().AsTime().UTC().Truncate(time.Second)
		r.DisconnectedAt = &t
	}
	return r
}

type ticketResponse struct {
	Ticket string `json:"ticket"`
	// ExpiresIn is the ticket's lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}
