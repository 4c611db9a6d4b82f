// Package domain holds the rules of presence-service: what a recorded session (one connection
// of a user to a gateway instance) is, how events about it combine whatever order they arrive
// in, how the end of a connection nobody reported is estimated, what "last seen" means, and
// the pagination cursor of a user's session history. It knows nothing of SQL, gRPC or Redis.
package domain

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Session is one connection of a user to a gateway instance, as history.
//
// Events about a session may arrive more than once and in any order; the recorded session is
// their merge, the same whatever the order: ConnectedAt is the earliest time reported for the
// connection (a disconnect that arrives first stands in for the connect until it comes), and
// DisconnectedAt the time of the disconnect, which an estimate (see EstimatedEnd) fills in
// when no disconnect ever comes.
type Session struct {
	ConnectionID string
	UserID       string
	InstanceID   string
	ConnectedAt  time.Time
	// DisconnectedAt is zero while the session is open.
	DisconnectedAt time.Time
}

// Open reports whether the session has not ended (as far as the history knows).
func (s Session) Open() bool { return s.DisconnectedAt.IsZero() }

// Validation errors.
var (
	ErrRequired        = errors.New("is required")
	ErrIDTooLong       = errors.New("must be at most 128 bytes")
	ErrCursorInvalid   = errors.New("is not a cursor returned by this list")
	ErrPageSizeInvalid = errors.New("must be between 1 and 100 (0 means 20)")
)

// MaxIDLength bounds user, connection and instance ids.
const MaxIDLength = 128

// FieldError is a broken rule about one field of the input.
type FieldError struct {
	Field string // the input's field name, e.g. "user_id"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + " " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// CheckID checks one required id.
func CheckID(field, id string) error {
	switch {
	case id == "":
		return &FieldError{Field: field, Err: ErrRequired}
	case len(id) > MaxIDLength:
		return &FieldError{Field: field, Err: ErrIDTooLong}
	}
	return nil
}

// Event is what a presence event tells about one connection: that it opened or closed At.
type Event struct {
	UserID       string
	ConnectionID string
	InstanceID   string
	At           time.Time
}

// Validate reports every missing or oversized field.
func (e Event) Validate() error {
	errs := []error{
		CheckID("user_id", e.UserID),
		CheckID("connection_id", e.ConnectionID),
		CheckID("instance_id", e.InstanceID),
	}
	if e.At.IsZero() {
		errs = append(errs, &FieldError{Field: "at", Err: ErrRequired})
	}
	return errors.Join(errs...)
}

// EstimatedEnd is when a connection found no longer live at now, without a disconnect, was
// last seen. Its gateway renewed it at most ttl before it expired, and it had expired by now,
// so the last renewal was no later than now - ttl; the estimate is that bound (and never
// before the connection began). The error is at most the time between two checks plus one
// heartbeat interval.
func EstimatedEnd(connectedAt, now time.Time, ttl time.Duration) time.Time {
	return later(connectedAt, now.Add(-ttl))
}

// Activity is what the history knows about a user's most recent connections.
type Activity struct {
	// LastDisconnectedAt is the latest end of a closed session; zero if none.
	LastDisconnectedAt time.Time
	// LatestOpenConnectedAt is the latest start of a session still open in the history;
	// zero if none.
	LatestOpenConnectedAt time.Time
}

// LastSeen is when the user was last seen: now while online; otherwise the latest end of a
// session, counting a session the history still holds open (its disconnect not yet recorded,
// or its gateway crashed) as ended at its EstimatedEnd. Zero if the user was never seen.
func LastSeen(online bool, now time.Time, a Activity, ttl time.Duration) time.Time {
	if online {
		return now
	}
	seen := a.LastDisconnectedAt
	if !a.LatestOpenConnectedAt.IsZero() {
		seen = later(seen, EstimatedEnd(a.LatestOpenConnectedAt, now, ttl))
	}
	return seen
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Page sizes of the session history.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// PageSize resolves a requested page size: 0 means DefaultPageSize; 1..MaxPageSize is taken
// as is; anything else is ErrPageSizeInvalid.
func PageSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 1 || n > MaxPageSize:
		return 0, ErrPageSizeInvalid
	}
	return n, nil
}

// Cursor is a position in a user's session history, which is ordered newest first by
// (ConnectedAt, ConnectionID). A page holds the sessions strictly after the cursor, so
// connections opened while a client pages through the history appear before its first page
// and never shift the later ones: no session is listed twice or skipped.
type Cursor struct {
	ConnectedAt  time.Time
	ConnectionID string
}

// IsZero reports whether c is the start of the history.
func (c Cursor) IsZero() bool { return c.ConnectedAt.IsZero() && c.ConnectionID == "" }

// Encode returns the opaque text form clients hand back: base64url of "<unix µs>.<id>".
func (c Cursor) Encode() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.ConnectedAt.UnixMicro(), 10) + "." + c.ConnectionID))
}

// ParseCursor decodes a cursor made by Encode; "" is the start of the history. Anything else
// is ErrCursorInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 256 {
		return Cursor{}, ErrCursorInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, ErrCursorInvalid
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || id == "" || len(id) > MaxIDLength {
		return Cursor{}, ErrCursorInvalid
	}
	micros, err := strconv.ParseInt(at, 10, 64)
	if err != nil || micros <= 0 {
		return Cursor{}, ErrCursorInvalid
	}
	return Cursor{ConnectedAt: time.UnixMicro(micros).UTC(), ConnectionID: id}, nil
}

// SessionPage is one page of a user's session history.
type SessionPage struct {
	Sessions []Session
	// Next is the cursor of the following page; zero on the last page.
	Next Cursor
}

// End is the end of one session: its connection and when it ended.
type End struct {
	ConnectionID string
	At           time.Time
}
