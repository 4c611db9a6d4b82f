// Package domain holds the rules of the dead-letter archive: what an archived dead letter is,
// how it is read out of the failure record that the event router writes into a dead letter's
// metadata, how two deliveries of one dead letter are recognised as the same, and what a
// replay sends back to the original topic.
package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/piazza-social/piazza/platform/events"
)

// Errors of the archive's use cases.
var (
	// ErrNotFound: no archived dead letter has the id.
	ErrNotFound = errors.New("dead letter not found")
	// ErrNoOriginalTopic: the dead letter does not say which topic it came from, so it cannot
	// be replayed.
	ErrNoOriginalTopic = errors.New("dead letter has no original topic")
	// ErrInvalidCursor: a list cursor that no List call returned.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// poisonKeys are the metadata keys that dead-lettering adds to a message: the router's failure
// record and the keys of watermill's poison queue (which also records the subscriber). A replay
// removes them, so the replayed message is the original one again.
var poisonKeys = []string{
	events.MetadataPoisonReason,
	events.MetadataPoisonTopic,
	events.MetadataPoisonHandler,
	events.MetadataPoisonAttempts,
	events.MetadataPoisonFirstFailure,
	events.MetadataPoisonLastFailure,
	middleware.PoisonedSubscriberKey,
}

// Letter is a message as it travels on the bus: its UUID, metadata and payload. A dead letter is
// the original message with the failure record added to its metadata.
type Letter struct {
	UUID     string
	Metadata map[string]string
	Payload  []byte
}

// Entry is one archived dead letter.
type Entry struct {
	// ID identifies the entry (a UUIDv7, so ids sort by archive time).
	ID string
	// MessageID is the UUID of the original message (for an event, the event id).
	MessageID string
	// Topic is the topic the message was consumed from when it failed; a replay goes there.
	Topic string
	// Handler is the name of the handler that gave up on it.
	Handler string
	// Reason is the text of the last error.
	Reason string
	// Attempts is how many times the handler ran; 0 when the dead letter does not say.
	Attempts int
	// FirstFailedAt and LastFailedAt bound the failed attempts; zero when the dead letter does
	// not say.
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	// Metadata is every metadata entry of the dead letter, failure record included.
	Metadata map[string]string
	// Payload is the message body, unchanged.
	Payload []byte
	// DedupeKey is the same for every delivery of one dead letter and differs between two
	// dead-letterings of one message (see DedupeKey).
	DedupeKey string
	// ArchivedAt is when the entry was stored.
	ArchivedAt time.Time
	// ReplayedAt is when the entry was last replayed; zero if never.
	ReplayedAt time.Time
	// ReplayCount is how many times the entry was replayed.
	ReplayCount int
}

// NewEntry reads the failure record out of the dead letter l and makes the entry id archived
// at archivedAt. It accepts any message: a failure-record key that is missing or malformed
// leaves its field empty, because the archive keeps whatever arrives on the dead-letter topic
// rather than reject it (rejecting would have nowhere to go).
func NewEntry(id string, l Letter, archivedAt time.Time) Entry {
	md := maps.Clone(l.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	payload := l.Payload
	if payload == nil {
		payload = []byte{}
	}
	attempts, err := strconv.Atoi(md[events.MetadataPoisonAttempts])
	if err != nil || attempts < 0 {
		attempts = 0
	}
	return Entry{
		ID:            id,
		MessageID:     l.UUID,
		Topic:         md[events.MetadataPoisonTopic],
		Handler:       md[events.MetadataPoisonHandler],
		Reason:        md[events.MetadataPoisonReason],
		Attempts:      attempts,
		FirstFailedAt: parseTime(md[events.MetadataPoisonFirstFailure]),
		LastFailedAt:  parseTime(md[events.MetadataPoisonLastFailure]),
		Metadata:      md,
		Payload:       payload,
		DedupeKey:     DedupeKey(l),
		ArchivedAt:    archivedAt.UTC(),
	}
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// DedupeKey identifies one dead-lettering of a message: its UUID and the time of its last
// failure, as the router wrote it. A redelivery of the dead letter carries both unchanged, so
// it is recognised and archived once; the same message dead-lettered again after a replay has
// a later last failure, so it becomes a new entry. A dead letter without a failure time (not
// written by the event router) is keyed by a hash of its whole content instead, which a
// redelivery also leaves unchanged.
func DedupeKey(l Letter) string {
	if last := l.Metadata[events.MetadataPoisonLastFailure]; last != "" {
		return l.UUID + "@" + last
	}
	// json.Marshal sorts map keys, so equal metadata hashes equally.
	md, _ := json.Marshal(l.Metadata)
	h := sha256.New()
	for _, part := range [][]byte{[]byte(l.UUID), md, l.Payload} {
		h.Write([]byte(strconv.Itoa(len(part)) + ":"))
		h.Write(part)
	}
	return l.UUID + "@sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Replayed reports whether the entry has been replayed at least once.
func (e Entry) Replayed() bool { return e.ReplayCount > 0 }

// Original returns the topic and the message a replay publishes: the original message as it was
// first published, that is the same UUID and payload and the dead letter's metadata without
// the failure record. It fails with ErrNoOriginalTopic when the dead letter does not name its
// topic.
func (e Entry) Original() (topic string, l Letter, err error) {
	if e.Topic == "" {
		return "", Letter{}, ErrNoOriginalTopic
	}
	md := maps.Clone(e.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	for _, k := range poisonKeys {
		delete(md, k)
	}
	return e.Topic, Letter{UUID: e.MessageID, Metadata: md, Payload: e.Payload}, nil
}

// Filter selects entries to list, newest first.
type Filter struct {
	// Topic keeps only the entries whose original topic it is; empty: every topic.
	Topic string
	// Before keeps only the entries older than the entry with this id (a page cursor); empty:
	// from the newest.
	Before string
	// Pending keeps only the entries never replayed.
	Pending bool
	// Limit caps the number of entries; it must be positive.
	Limit int
}
