package domain

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// IDGenerator makes UUIDv7 ids from a given time (RFC 9562): the leading 48 bits are the Unix
// time in milliseconds, the next 12 (after the version) a sub-millisecond fraction, the rest
// random. Ids it makes are strictly increasing, also when the clock stands still or steps back
// (the fraction then counts up, carrying into the millisecond), so the messages one process
// creates sort by id exactly in creation order. Across processes, ids of the same millisecond
// are ordered by their fraction, then at random.
//
// Message ids are the messages' order and their time: a message's created_at is the time in
// its id (IDTime), so the two never disagree. The zero value is ready to use and safe for
// concurrent use.
type IDGenerator struct {
	mu   sync.Mutex
	last int64 // ms<<12 | fraction of the last id made
}

// New returns a fresh id for something created at at (to the millisecond; at most a
// millisecond later when ids are made faster than 4096 per millisecond or the clock steps
// back).
func (g *IDGenerator) New(at time.Time) (string, error) {
	ms := at.UnixMilli()
	if ms < 0 || ms >= 1<<48 {
		return "", fmt.Errorf("domain: time %v is outside the range of a UUIDv7", at)
	}
	v := ms<<12 | int64(at.Nanosecond()%int(time.Millisecond))*4096/int64(time.Millisecond)
	g.mu.Lock()
	if v <= g.last {
		v = g.last + 1
	}
	g.last = v
	g.mu.Unlock()

	var u uuid.UUID
	if _, err := rand.Read(u[8:]); err != nil {
		return "", fmt.Errorf("domain: generate id: %w", err)
	}
	var head [8]byte
	binary.BigEndian.PutUint64(head[:], uint64(v>>12)<<16|0x7000|uint64(v&0xfff))
	copy(u[:8], head[:])
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String(), nil
}

// IDTime returns the time carried by a UUIDv7 id made by IDGenerator (millisecond precision,
// UTC). ok is false when id is not a canonical lowercase UUIDv7, e.g. a malformed or forged
// message id, which then names no message.
func IDTime(id string) (t time.Time, ok bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return time.Time{}, false
	}
	ms := int64(binary.BigEndian.Uint64(u[:8]) >> 16)
	return time.UnixMilli(ms).UTC(), true
}

// IDFraction returns the 12-bit sub-millisecond fraction of a UUIDv7 id (0..4095), which
// orders ids of the same millisecond; 0 for anything else.
func IDFraction(id string) int {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return 0
	}
	return int(binary.BigEndian.Uint16(u[6:8]) & 0x0fff)
}

// ValidID reports whether s is an id as Piazza makes them (users, conversations, messages): a
// UUID in its canonical lowercase text form. Anything else names nothing, so lookups answer
// "not found" without asking the store.
func ValidID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}
