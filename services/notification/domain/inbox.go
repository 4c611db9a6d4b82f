package domain

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
)

// Inbox page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	// MaxSince bounds one ListSince answer: a gateway replays at most this many notifications
	// on reconnect before it tells the client to resync.
	MaxSince = 1000
)

// MaxDeliveryBatch bounds how many recipients one delivery (one transaction of the inbox
// store) serves: it keeps a transaction, and the write lock it holds, short. A fan-out to more
// users is cut into batches.
const MaxDeliveryBatch = 5000

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

// SinceLimit resolves a requested ListSince limit: 0 means MaxSince; 1..MaxSince is taken as
// is; anything else is ErrSinceLimitInvalid.
func SinceLimit(n int) (int, error) {
	switch {
	case n == 0:
		return MaxSince, nil
	case n < 1 || n > MaxSince:
		return 0, ErrSinceLimitInvalid
	}
	return n, nil
}

// Cursor is a position in a user's inbox listed newest first: a page holds the notifications
// with a sequence number below Before. Sequence numbers only grow, so notifications stored
// while a client pages appear before its first page and never shift later pages: nothing is
// listed twice or skipped.
type Cursor struct {
	Before int64 // 0: the start of the list (the newest notification)
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.Before == 0 }

// Bound returns the exclusive upper bound of the sequence numbers c admits.
func (c Cursor) Bound() int64 {
	if c.IsZero() {
		return math.MaxInt64
	}
	return c.Before
}

// cursorPrefix versions the opaque cursor text.
const cursorPrefix = "n1."

// Encode returns the opaque text form clients hand back; "" for the start.
func (c Cursor) Encode() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(c.Before, 10)))
}

// ParseCursor decodes a cursor made by Encode; "" is the start of the list. Anything else is
// ErrCursorInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 64 {
		return Cursor{}, ErrCursorInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, ErrCursorInvalid
	}
	digits, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return Cursor{}, ErrCursorInvalid
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 2 || strconv.FormatInt(n, 10) != digits {
		// Before 1 would admit nothing: no cursor made by Encode says so.
		return Cursor{}, ErrCursorInvalid
	}
	return Cursor{Before: n}, nil
}

// Page is one page of an inbox, newest first.
type Page struct {
	Items []Notification
	// Next is the cursor of the following page; zero on the last page.
	Next Cursor
}

// Since is the answer to "what came after seq N": notifications oldest first, and whether
// more follow the last one.
type Since struct {
	Items   []Notification
	HasMore bool
}

// Unread is the state of a user's read marker.
type Unread struct {
	// Count is how many notifications have a sequence number above the read marker.
	Count int64
	// LastSeq is the user's newest sequence number (0 when the inbox is empty).
	LastSeq int64
}

// ReadMarker resolves a requested read position for MarkRead: the marker moves up to upTo,
// clamped to the inbox's newest sequence number, and never backwards (the store enforces
// both). A negative upTo is ErrSeqInvalid.
func ReadMarker(upTo int64) (int64, error) {
	if upTo < 0 {
		return 0, ErrSeqInvalid
	}
	return upTo, nil
}
