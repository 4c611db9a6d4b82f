package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of a message.
const (
	// TextMaxRunes is the longest text of a message, in characters (runes) after trimming.
	TextMaxRunes = 4000
	// ClientMsgIDMaxRunes is the longest client message id, in characters.
	ClientMsgIDMaxRunes = 64
)

// Message is one message of a conversation.
type Message struct {
	// ID is a UUIDv7 (IDGenerator): messages are ordered by id, which is ordering by time.
	ID             string
	ConversationID string
	SenderID       string
	Text           string // as ParseText returned it
	// ClientMsgID is chosen by the sending client, unique per sender and conversation: a send
	// repeated with the same one gives back this message instead of a new one.
	ClientMsgID string
	// CreatedAt is the time in ID (millisecond precision, UTC).
	CreatedAt time.Time
}

// ParseText normalises the text of a message by trimming leading and trailing white space
// (Unicode's definition) and checks what is left: at least one character (ErrTextEmpty), at
// most TextMaxRunes characters counted as runes (ErrTextTooLong), valid UTF-8 without NUL
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

// ParseClientMsgID checks a client message id: 1..ClientMsgIDMaxRunes characters of valid
// UTF-8 without control characters (ErrClientMsgIDInvalid). It is an opaque token, compared
// exactly, so it is not trimmed.
func ParseClientMsgID(s string) (string, error) {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > ClientMsgIDMaxRunes ||
		strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", ErrClientMsgIDInvalid
	}
	return s, nil
}
