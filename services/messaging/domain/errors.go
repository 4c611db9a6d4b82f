// Package domain holds the rules of messaging-service: what a conversation is (one-to-one,
// unique per pair, or a small group of at most 50 participants), who may see it (its
// participants only), what a message may carry (1–4000 characters after trimming, a
// client-chosen id of 1–64 characters that makes a retried send idempotent), how messages are
// ordered (time-sortable UUIDv7 ids), and the pagination of conversation and message lists
// (page sizes and opaque keyset cursors). It knows nothing of SQL, CQL, gRPC or HTTP; its
// errors carry a machine slug and a message, never a transport status (the application maps
// them to platform error codes at its edge).
package domain

import (
	"github.com/piazza-social/piazza/platform/fielderr"
)

// Kind sorts the rules by what a caller can do about a broken one; the application maps each
// kind to one platform error code.
type Kind int

// The kinds of Error.
const (
	// KindInvalidInput: the input breaks a rule by itself; correcting it helps.
	KindInvalidInput Kind = iota + 1
	// KindNotFound: the input names something that does not exist for the caller.
	KindNotFound
)

// Kinds lists every Kind.
func Kinds() []Kind { return []Kind{KindInvalidInput, KindNotFound} }

// Error is a broken domain rule: its kind, a stable machine-readable slug and a client-safe
// message. The package's errors are sentinels; compare them with errors.Is.
type Error struct {
	kind Kind
	slug string
	msg  string
}

func newError(kind Kind, slug, msg string) *Error { return &Error{kind: kind, slug: slug, msg: msg} }

// Kind says what sort of rule e is.
func (e *Error) Kind() Kind { return e.kind }

// Error returns the message.
func (e *Error) Error() string { return e.msg }

// Slug returns the machine-readable name of the rule, e.g. "text-too-long".
func (e *Error) Slug() string { return e.slug }

// Input rules (KindInvalidInput): the request is wrong.
var (
	ErrTextEmpty           = newError(KindInvalidInput, "text-empty", "must not be empty or only whitespace")
	ErrTextTooLong         = newError(KindInvalidInput, "text-too-long", "must be at most 4000 characters after trimming")
	ErrTextInvalid         = newError(KindInvalidInput, "text-invalid", "must be valid UTF-8 text without NUL characters")
	ErrIDInvalid           = newError(KindInvalidInput, "id-invalid", "must be an id as Piazza issues them (a lowercase UUID)")
	ErrClientMsgIDInvalid  = newError(KindInvalidInput, "client-msg-id-invalid", "must be 1 to 64 printable characters")
	ErrParticipantsTooFew  = newError(KindInvalidInput, "participants-too-few", "must name at least one user besides the caller")
	ErrParticipantsTooMany = newError(KindInvalidInput, "participants-too-many", "must name at most 50 users, the caller included")
	ErrCursorInvalid       = newError(KindInvalidInput, "cursor-invalid", "is not a cursor returned by this list")
	ErrPageSizeInvalid     = newError(KindInvalidInput, "page-size-invalid", "must be between 1 and 100 (0 means 20)")
)

// Missing things (KindNotFound).
var (
	// ErrConversationNotFound: no such conversation, or the caller does not take part in it.
	// The two are one error on purpose: to anyone but its participants a conversation does not
	// exist, so an answer must not tell whether its id is taken.
	ErrConversationNotFound = newError(KindNotFound, "conversation-not-found", "no such conversation")
	// ErrMessageNotFound: the conversation holds no message with that id.
	ErrMessageNotFound = newError(KindNotFound, "message-not-found", "no such message in this conversation")
)

// FieldError ties a broken rule to the input field it is about (the field's name in the
// request); errors.Is sees through it to the rule.
type FieldError = fielderr.Error[*Error]

// FieldErrors lists every FieldError in err's tree (errors.Join and wrapping included), in
// order; nil when there is none.
func FieldErrors(err error) []*FieldError { return fielderr.All[*Error](err) }

// Fields collects field errors; Err joins them (nil when there are none).
type Fields = fielderr.List[*Error]
