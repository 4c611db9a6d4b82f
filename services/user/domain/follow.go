package domain

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Follow-graph limits.
const (
	// MaxFollowing is how many accounts one account may follow. It bounds the fan-in of a home
	// timeline and GetFollowedIDs' answer.
	MaxFollowing = 5000

	DefaultPageSize = 20
	MaxPageSize     = 100

	DefaultFollowerBatch = 1000
	MaxFollowerBatch     = 5000
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

// FollowerBatchSize resolves a requested batch size: 0 means DefaultFollowerBatch;
// 1..MaxFollowerBatch is taken as is; anything else is ErrBatchSizeInvalid.
func FollowerBatchSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultFollowerBatch, nil
	case n < 1 || n > MaxFollowerBatch:
		return 0, ErrBatchSizeInvalid
	}
	return n, nil
}

// Cursor is a position in a follow list, which is ordered newest first by (when the follow
// was made, the listed user's id). A page holds the entries strictly after the cursor, so
// follows made while a client pages through a list appear before its first page and never
// shift the later ones: no entry is listed twice or skipped.
type Cursor struct {
	At time.Time // when the last listed follow was made
	ID string    // the last listed user's id
}

// IsZero reports whether c is the start of a list.
func (c Cursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// Encode returns the opaque text form clients hand back: base64url of "<unix µs>.<id>".
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
	if err != nil || micros <= 0 {
		return Cursor{}, ErrCursorInvalid
	}
	parsed, err := uuid.Parse(id)
	if err != nil || parsed.String() != id {
		return Cursor{}, ErrCursorInvalid
	}
	return Cursor{At: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// FollowPage is one page of a follow list.
type FollowPage struct {
	Users []User
	// Next is the cursor of the following page; zero on the last page.
	Next Cursor
}

// ValidID reports whether s is a user, session or cursor id as this service makes them: a
// UUID in its canonical lowercase text form.
func ValidID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// MaxUsersPerLookup bounds how many ids one GetUsers call may ask for.
const MaxUsersPerLookup = 500
