package domain

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// TextMaxRunes is the longest text of a post or comment, in characters (runes) after trimming.
const TextMaxRunes = 500

// Post is a post as the rest of the service sees it.
type Post struct {
	ID           string // UUIDv7: ids sort by creation time
	AuthorID     string
	Text         string // as ParseText returned it: trimmed, 1..TextMaxRunes characters
	CreatedAt    time.Time
	LikeCount    int64
	CommentCount int64
	// LikedByMe says whether the user the post was read for (the caller) likes it; false when
	// it was read for nobody.
	LikedByMe bool
}

// Comment is one comment on a post.
type Comment struct {
	ID        string // UUIDv7
	PostID    string
	AuthorID  string
	Text      string // as ParseText returned it
	CreatedAt time.Time
}

// ParseText normalises the text of a post or comment by trimming leading and trailing white
// space (Unicode's definition) and checks what is left: at least one character
// (ErrTextEmpty), at most TextMaxRunes characters, counted as runes so that "é" or "✌" count
// as one (ErrTextTooLong), valid UTF-8 without NUL, which PostgreSQL cannot store
// (ErrTextInvalid). Inner white space and line breaks are kept as written.
func ParseText(s string) (string, error) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", ErrTextInvalid
	}
	t := strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(t); {
	case n == 0:
		return "", ErrTextEmpty
	case n > TextMaxRunes:
		return "", ErrTextTooLong
	}
	return t, nil
}

// NewID returns a fresh UUIDv7 in canonical text form. Its leading 48 bits are the creation
// time in milliseconds, so rows inserted in id order cluster in their indexes and ids break
// ties between equal timestamps in roughly creation order.
func NewID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// ValidID reports whether s is a post, comment or user id as Piazza makes them: a UUID in its
// canonical lowercase text form. Anything else names nothing, so lookups answer "not found"
// without asking the database (which, on PostgreSQL, would reject it as a malformed UUID).
func ValidID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// CheckDelete says whether userID may delete p: only its author may (ErrNotAuthor).
func (p Post) CheckDelete(userID string) error {
	if userID == "" || userID != p.AuthorID {
		return ErrNotAuthor
	}
	return nil
}
