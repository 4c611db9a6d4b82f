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

// Cursor is a position in a list ordered by (created_at, id): newest first for posts, oldest
// first for comments. A page holds the entries strictly beyond the cursor in the list's
// order. Because new posts are newer than every listed one and new comments are older than
// none, entries created while a client pages through a list land before the first page (posts)
// or after the cursor (comments), never shifting what the cursor points at: no entry is
// listed twice or skipped. Equal timestamps are ordered by id, so the position is exact.
type Cursor struct {
	At time.Time // created_at of the last listed entry
	ID string    // its id
}

// IsZero reports whether c is the start of a list.
func (c Cursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// Encode returns the opaque text form clients hand back: base64url (unpadded) of
// "<unix µs>.<id>"; "" for the zero cursor.
func (c Cursor) Encode() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 10) + "." + c.ID))
}

// ParseCursor decodes a cursor made by Encode; "" is the start of the list. Anything else is
// ErrCursorInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 128 {
		return Cursor{}, ErrCursorInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Cursor{}, ErrCursorInvalid
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return Cursor{}, ErrCursorInvalid
	}
	micros, err := strconv.ParseInt(at, 10, 64)
	if err != nil || micros <= 0 || strconv.FormatInt(micros, 10) != at {
		return Cursor{}, ErrCursorInvalid
	}
	if !ValidID(id) {
		return Cursor{}, ErrCursorInvalid
	}
	return Cursor{At: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// PostPage is one page of a post list, newest first.
type PostPage struct {
	Posts []Post
	// Next is the cursor of the following page; zero on the last page.
	Next Cursor
}

// CommentPage is one page of a post's comments, oldest first.
type CommentPage struct {
	Comments []Comment
	// Next is the cursor of the following page; zero on the last page.
	Next Cursor
}
