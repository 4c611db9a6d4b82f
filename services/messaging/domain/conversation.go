package domain

import (
	"slices"
	"time"
)

// MaxParticipants is the most participants a conversation has, its creator included.
const MaxParticipants = 50

// UnreadCountLimit bounds unread counts: a count is exact below it and UnreadCountLimit means
// "that many or more" (clients show "99+"). Counting is then a bounded read whatever the
// backlog: on Cassandra an exact count of a long unread history would read every message of
// it, for each conversation of the list.
const UnreadCountLimit = 100

// Conversation is a conversation as one of its participants (the viewer) sees it.
//
// A conversation of two participants is their one-to-one conversation: there is at most one
// per pair, and creating it again gives back the existing one. A conversation of three or more
// is a group; each creation makes a new one. Participants never change.
type Conversation struct {
	ID string // UUIDv7
	// ParticipantIDs are the user ids taking part, distinct and sorted, 2..MaxParticipants.
	ParticipantIDs []string
	CreatedAt      time.Time
	// LastActivityAt is the time of the newest message, or of the creation while there is none.
	// Conversation lists are ordered by it, newest first.
	LastActivityAt time.Time
	// LastMessage is the newest message; nil while there is none.
	LastMessage *Message
	// UnreadCount is how many messages of others the viewer has not read: those after their
	// read marker, capped at UnreadCountLimit. Sending a message marks everything before it as
	// read by its sender.
	UnreadCount int64
}

// Direct reports whether c is a one-to-one conversation.
func (c Conversation) Direct() bool { return len(c.ParticipantIDs) == 2 }

// Has reports whether userID takes part in c.
func (c Conversation) Has(userID string) bool {
	_, found := slices.BinarySearch(c.ParticipantIDs, userID)
	return found
}

// Participants returns who takes part in a conversation that creatorID starts with others:
// the creator (added if absent) and the others, without repeats, sorted. Every id must be
// well-formed (ErrIDInvalid); there must be someone besides the creator
// (ErrParticipantsTooFew) and at most MaxParticipants in all (ErrParticipantsTooMany).
func Participants(creatorID string, others []string) ([]string, error) {
	if len(others) > 4*MaxParticipants {
		return nil, ErrParticipantsTooMany // do not even sort what cannot be accepted
	}
	out := make([]string, 0, len(others)+1)
	out = append(out, creatorID)
	for _, id := range others {
		if !ValidID(id) {
			return nil, ErrIDInvalid
		}
		out = append(out, id)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	switch {
	case len(out) < 2:
		return nil, ErrParticipantsTooFew
	case len(out) > MaxParticipants:
		return nil, ErrParticipantsTooMany
	}
	return out, nil
}
