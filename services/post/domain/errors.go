// Package domain holds the rules of post-service: what a post and a comment are, what text
// they may carry (1–500 characters after trimming), who may delete a post, and the pagination
// of post and comment lists (page sizes and opaque keyset cursors). It knows nothing of SQL,
// gRPC or HTTP; its errors carry a machine slug and a message, never a transport status (the
// application maps them to platform error codes at its edge).
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
	// KindNotFound: the input names something that does not exist.
	KindNotFound
	// KindForbidden: the caller is known but may not do this.
	KindForbidden
)

// Kinds lists every Kind.
func Kinds() []Kind { return []Kind{KindInvalidInput, KindNotFound, KindForbidden} }

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
	ErrTextEmpty       = newError(KindInvalidInput, "text-empty", "must not be empty or only whitespace")
	ErrTextTooLong     = newError(KindInvalidInput, "text-too-long", "must be at most 500 characters after trimming")
	ErrTextInvalid     = newError(KindInvalidInput, "text-invalid", "must be valid UTF-8 text without NUL characters")
	ErrIDInvalid       = newError(KindInvalidInput, "id-invalid", "must be an id as this service issues them (a lowercase UUID)")
	ErrCursorInvalid   = newError(KindInvalidInput, "cursor-invalid", "is not a cursor returned by this list")
	ErrPageSizeInvalid = newError(KindInvalidInput, "page-size-invalid", "must be between 1 and 100 (0 means 20)")
)

// Missing things (KindNotFound).
var (
	// ErrPostNotFound: no such post, or it was deleted (its likes and comments went with it).
	ErrPostNotFound = newError(KindNotFound, "post-not-found", "no such post")
)

// Permissions (KindForbidden).
var (
	// ErrNotAuthor: only a post's author may delete it.
	ErrNotAuthor = newError(KindForbidden, "not-author", "only the author may delete this post")
)

// FieldError ties a broken rule to the input field it is about (the field's name in the
// request); errors.Is sees through it to the rule.
type FieldError = fielderr.Error[*Error]

// FieldErrors lists every FieldError in err's tree (errors.Join and wrapping included), in
// order; nil when there is none.
func FieldErrors(err error) []*FieldError { return fielderr.All[*Error](err) }

// Fields collects field errors; Err joins them (nil when there are none).
type Fields = fielderr.List[*Error]
