package domain

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Page sizes of every list.
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

// maxCursorLen bounds what a cursor parser decodes.
const maxCursorLen = 128

// MessageCursor is a position in a conversation's messages, listed newest first: a page holds
// the messages strictly older than BeforeID, the last message of the previous page. Message
// ids are time-sortable, so the position is exact, and messages sent while a client pages
// through the history are newer than every listed one: they land before the first page, never
// shifting what the cursor points at. The id also carries its time, which tells a store
// partitioning messages by time where to continue.
type MessageCursor struct {
	BeforeID string
}

// IsZero reports whether c is the start of the list (the newest message).
func (c MessageCursor) IsZero() bool { return c.BeforeID == "" }

// Encode returns the opaque text form clients hand back: base64url (unpadded) of
// "m.<message id>"; "" for the zero cursor.
func (c MessageCursor) Encode() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("m." + c.BeforeID))
}

// ParseMessageCursor decodes a cursor made by MessageCursor.Encode; "" is the start of the
// list. Anything else is ErrCursorInvalid.
func ParseMessageCursor(s string) (MessageCursor, error) {
	if s == "" {
		return MessageCursor{}, nil
	}
	raw, ok := decodeCursor(s)
	id, found := strings.CutPrefix(raw, "m.")
	if !ok || !found {
		return MessageCursor{}, ErrCursorInvalid
	}
	if _, ok := IDTime(id); !ok {
		return MessageCursor{}, ErrCursorInvalid
	}
	return MessageCursor{BeforeID: id}, nil
}

// ConversationCursor is a position in a user's conversations, listed by last activity,
// newest first (ties by id, descending): a page holds the conversations strictly beyond
// (At, ID) in that order. A conversation that becomes active while a client pages moves to the
// top of the list, before the first page; one that was not listed yet is then missed by this
// walk and seen at the next refresh of the top, as in every list ordered by activity.
type ConversationCursor struct {
	At time.Time // last activity of the last listed conversation (millisecond precision)
	ID string    // its id
}

// IsZero reports whether c is the start of the list.
func (c ConversationCursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// Encode returns the opaque text form: base64url (unpadded) of "c.<unix ms>.<id>"; "" for the
// zero cursor.
func (c ConversationCursor) Encode() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("c." + strconv.FormatInt(c.At.UnixMilli(), 10) + "." + c.ID))
}

// ParseConversationCursor decodes a cursor made by ConversationCursor.Encode; "" is the start
// of the list. Anything else is ErrCursorInvalid.
func ParseConversationCursor(s string) (ConversationCursor, error) {
	if s == "" {
		return ConversationCursor{}, nil
	}
	raw, ok := decodeCursor(s)
	rest, found := strings.CutPrefix(raw, "c.")
	if !ok || !found {
		return ConversationCursor{}, ErrCursorInvalid
	}
	at, id, ok := strings.Cut(rest, ".")
	if !ok || !ValidID(id) {
		return ConversationCursor{}, ErrCursorInvalid
	}
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil || ms <= 0 || strconv.FormatInt(ms, 10) != at {
		return ConversationCursor{}, ErrCursorInvalid
	}
	return ConversationCursor{At: time.UnixMilli(ms).UTC(), ID: id}, nil
}

func decodeCursor(s string) (string, bool) {
	if len(s) > maxCursorLen {
		return "", false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return string(raw), err == nil
}

// MessagePage is one page of a conversation's messages, newest first; Next is the zero cursor
// on the last page.
type MessagePage struct {
	Messages []Message
	Next     MessageCursor
}

// ConversationPage is one page of a user's conversations by last activity; Next is the zero
// cursor on the last page.
type ConversationPage struct {
	Conversations []Conversation
	Next          ConversationCursor
}
