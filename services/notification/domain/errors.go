// Package domain holds the rules of notification-service: which domain event notifies whom
// (the recipients), what a notification says (its data, per type), and the rules of a user's
// inbox — the per-user sequence, the read marker, and how the inbox is paged. It knows nothing
// of SQL, gRPC or the bus; its errors carry a machine slug and a message, never a transport
// status (the application maps them to platform error codes at its edge).
package domain

import (
	"github.com/piazza-social/piazza/platform/fielderr"
)

// Kind sorts the rules by what a caller can do about a broken one; the application maps each
// kind to one platform error code.
type Kind int

// The kinds of Error.
const (
	// KindInvalidInput: a request breaks a rule by itself; correcting it helps.
	KindInvalidInput Kind = iota + 1
	// KindInvalidEvent: a domain event cannot be turned into notifications, now or ever (a
	// required field is missing). The consumer dead-letters it instead of retrying.
	KindInvalidEvent
)

// Kinds lists every Kind.
func Kinds() []Kind { return []Kind{KindInvalidInput, KindInvalidEvent} }

// Error is a broken domain rule: its kind, a stable machine-readable slug and a message. The
// package's errors are sentinels (compare with errors.Is), possibly wrapped with detail.
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

// Slug returns the machine-readable name of the rule, e.g. "cursor-invalid".
func (e *Error) Slug() string { return e.slug }

// Input rules (KindInvalidInput): the request is wrong.
var (
	ErrUserIDRequired     = newError(KindInvalidInput, "user-id-required", "is required")
	ErrCursorInvalid      = newError(KindInvalidInput, "cursor-invalid", "is not a cursor returned by this list")
	ErrPageSizeInvalid    = newError(KindInvalidInput, "page-size-invalid", "must be between 1 and 100 (0 means 20)")
	ErrSinceLimitInvalid  = newError(KindInvalidInput, "since-limit-invalid", "must be between 1 and 1000 (0 means 1000)")
	ErrSeqInvalid         = newError(KindInvalidInput, "seq-invalid", "must not be negative")
	ErrInvalidEventFields = newError(KindInvalidEvent, "event-invalid", "the event lacks a field its notification needs")
)

// FieldError ties a broken rule to the input field it is about (the field's name in the
// request); errors.Is sees through it to the rule.
type FieldError = fielderr.Error[*Error]

// FieldErrors lists every FieldError in err's tree (errors.Join and wrapping included), in
// order; nil when there is none.
func FieldErrors(err error) []*FieldError { return fielderr.All[*Error](err) }

// fields collects field errors into one error, nil when there are none.
type fields = fielderr.List[*Error]
