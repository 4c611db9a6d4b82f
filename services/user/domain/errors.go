// Package domain holds the rules of user-service: what a valid username, email address,
// password and profile are and how they are normalised, what a session and a refresh token are
// and when they stop being valid, the follow graph's limits and its pagination cursor. It knows
// nothing of SQL, gRPC or HTTP; its errors carry a machine slug and a message, never a
// transport status (the application maps them to platform error codes at its edge).
package domain

import (
	"github.com/piazza-social/piazza/platform/fielderr"
	"strings"
)

// Kind sorts the rules by what a caller can do about a broken one; the application maps each
// kind to one platform error code.
type Kind int

// The kinds of Error.
const (
	// KindInvalidInput: the input breaks a rule by itself; correcting it helps.
	KindInvalidInput Kind = iota + 1
	// KindConflict: the input is fine but collides with the current state.
	KindConflict
	// KindNotFound: the input names something that does not exist.
	KindNotFound
	// KindUnauthenticated: the caller's identity could not be established.
	KindUnauthenticated
	// KindSessionEnded: the session or refresh token cannot be used any more; the client must
	// log in again.
	KindSessionEnded
)

// Kinds lists every Kind.
func Kinds() []Kind {
	return []Kind{KindInvalidInput, KindConflict, KindNotFound, KindUnauthenticated, KindSessionEnded}
}

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

// Slug returns the machine-readable name of the rule, e.g. "username-taken".
func (e *Error) Slug() string { return e.slug }

// Input rules (KindInvalidInput): the request is wrong.
var (
	ErrUsernameInvalid    = newError(KindInvalidInput, "username-invalid", "must be 3 to 30 characters of a-z, 0-9 and _")
	ErrEmailInvalid       = newError(KindInvalidInput, "email-invalid", "must be a valid email address of at most 254 characters")
	ErrPasswordTooShort   = newError(KindInvalidInput, "password-too-short", "must be at least 10 characters")
	ErrPasswordTooLong    = newError(KindInvalidInput, "password-too-long", "must be at most 256 bytes")
	ErrPasswordCommon     = newError(KindInvalidInput, "password-common", "is too common; choose another")
	ErrDisplayNameInvalid = newError(KindInvalidInput, "display-name-invalid", "must be at most 50 characters, without control characters")
	ErrBioInvalid         = newError(KindInvalidInput, "bio-invalid", "must be at most 160 characters, without control characters other than line breaks")
	ErrFollowSelf         = newError(KindInvalidInput, "follow-self", "you cannot follow yourself")
	ErrCursorInvalid      = newError(KindInvalidInput, "cursor-invalid", "is not a cursor returned by this list")
	ErrPageSizeInvalid    = newError(KindInvalidInput, "page-size-invalid", "must be between 1 and 100 (0 means 20)")
	ErrBatchSizeInvalid   = newError(KindInvalidInput, "batch-size-invalid", "must be between 1 and 5000 (0 means 1000)")
	ErrTooManyIDs         = newError(KindInvalidInput, "too-many-ids", "at most 500 ids per request")
)

// State rules (KindConflict): the request is well-formed but collides with what exists.
var (
	ErrUsernameTaken      = newError(KindConflict, "username-taken", "is already taken")
	ErrEmailTaken         = newError(KindConflict, "email-taken", "is already registered")
	ErrFollowLimitReached = newError(KindConflict, "follow-limit-reached", "you already follow the maximum number of accounts (5000)")
)

// Missing things (KindNotFound).
var (
	ErrUserNotFound = newError(KindNotFound, "user-not-found", "no such user")
)

// Authentication (KindUnauthenticated) and sessions (KindSessionEnded).
var (
	// ErrInvalidCredentials is the one answer to a failed login, whether the account does not
	// exist or the password is wrong, so that a login attempt does not reveal which accounts
	// exist.
	ErrInvalidCredentials = newError(KindUnauthenticated, "invalid-credentials", "wrong login or password")
	// ErrCallerUnknown: an action on behalf of an account that does not exist.
	ErrCallerUnknown = newError(KindUnauthenticated, "caller-unknown", "the calling account does not exist")
	// ErrRefreshTokenInvalid: the refresh token is malformed or was never issued.
	ErrRefreshTokenInvalid = newError(KindSessionEnded, "refresh-token-invalid", "the refresh token is not valid; log in again")
	// ErrRefreshTokenExpired: the refresh token outlived its lifetime.
	ErrRefreshTokenExpired = newError(KindSessionEnded, "refresh-token-expired", "the refresh token has expired; log in again")
	// ErrRefreshTokenReused: the refresh token had already been spent. Its session has been
	// revoked, since either the client or a thief holds a copy.
	ErrRefreshTokenReused = newError(KindSessionEnded, "refresh-token-reused", "the refresh token was already used; the session is revoked, log in again")
	// ErrSessionRevoked: the session was logged out or revoked after a token reuse.
	ErrSessionRevoked = newError(KindSessionEnded, "session-revoked", "the session has ended; log in again")
	// ErrSessionExpired: the session outlived its last refresh token.
	ErrSessionExpired = newError(KindSessionEnded, "session-expired", "the session has expired; log in again")
	// ErrSessionNotFound: no such session (or not the caller's).
	ErrSessionNotFound = newError(KindSessionEnded, "session-not-found", "the session does not exist; log in again")
)

// FieldError ties a broken rule to the input field it is about (the field's name in the
// request); errors.Is sees through it to the rule.
type FieldError = fielderr.Error[*Error]

// FieldErrors lists every FieldError in err's tree (errors.Join and wrapping included), in
// order; nil when there is none.
func FieldErrors(err error) []*FieldError { return fielderr.All[*Error](err) }

// fields collects field errors into one error, nil when there are none.
type fields = fielderr.List[*Error]

// foldASCII lowercases ASCII letters only: usernames and the common-password list are ASCII,
// and Unicode case folding would let distinct inputs collide in surprising ways.
func foldASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
