// Package errs is Piazza's single error model.
//
// Every error that may reach a client is an [*Error]: a machine-readable
// [Code], a client-safe Message, optional field violations (for
// [ValidationFailed]), an optional RetryAfter hint, and an internal cause.
// The cause is for logs only: nothing in the platform ever sends it (or
// Error(), which includes it) to a client.
//
// The code is the contract between services and clients. It maps to an HTTP
// status and a gRPC status code through one table (see [Code.HTTPStatus] and
// [Code.GRPCCode]); because several codes share a gRPC code (token_expired and
// token_invalid are both Unauthenticated), the exact code crosses gRPC in the
// status details (see [Error.GRPCStatus] and [FromGRPCStatus]).
//
// Errors that are not an *Error (a driver error, a bug) are internal errors:
// [From] and [CodeOf] treat them as [Internal], except context cancellation
// and deadlines, which keep their meaning.
package errs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// Code is a stable, machine-readable error code. Clients switch on it, so a
// code's string never changes once released.
type Code string

// The codes. Adding one means adding its row to the table below; a unit test
// fails for any Code constant without a row.
const (
	// ValidationFailed: the request is malformed or violates a rule; Fields
	// say where.
	ValidationFailed Code = "validation_failed"
	// PayloadTooLarge: the request body exceeds the size limit. It is not
	// ValidationFailed because it has its own HTTP status (413) and a client
	// fixes it differently (send less), not by correcting a field.
	PayloadTooLarge Code = "payload_too_large"
	// Unauthenticated: the caller's identity could not be established.
	Unauthenticated Code = "unauthenticated"
	// TokenMissing: no access token was presented.
	TokenMissing Code = "token_missing"
	// TokenExpired: the access token has expired; the client should refresh.
	TokenExpired Code = "token_expired"
	// TokenInvalid: the access token is malformed or its signature is wrong.
	TokenInvalid Code = "token_invalid"
	// Forbidden: the caller is known but not allowed to do this.
	Forbidden Code = "forbidden"
	// NotFound: the resource (or route) does not exist.
	NotFound Code = "not_found"
	// MethodNotAllowed: the route exists but not for this HTTP method.
	MethodNotAllowed Code = "method_not_allowed"
	// Conflict: the request conflicts with the current state (duplicate,
	// concurrent modification).
	Conflict Code = "conflict"
	// RateLimited: too many requests; RetryAfter says when to try again.
	RateLimited Code = "rate_limited"
	// Unavailable: a dependency is down or the service is draining; retryable.
	Unavailable Code = "unavailable"
	// DeadlineExceeded: the request ran out of time.
	DeadlineExceeded Code = "deadline_exceeded"
	// Canceled: the caller went away.
	Canceled Code = "canceled"
	// Internal: a bug or an unexpected failure. Never carries details to the
	// client.
	Internal Code = "internal"
)

// Domain is the errdetails.ErrorInfo domain under which codes travel in gRPC
// status details.
const Domain = "piazza"

// StatusClientClosedRequest is the non-standard HTTP status (from nginx) for
// a request whose client went away; nobody reads it, but access logs and
// metrics then tell cancellations apart from server errors.
const StatusClientClosedRequest = 499

type codeInfo struct {
	http  int
	grpc  codes.Code
	title string
}

// table is THE mapping of codes to HTTP status, gRPC code and problem title.
// It is read-only after package initialisation.
var table = map[Code]codeInfo{
	ValidationFailed: {400, codes.InvalidArgument, "Validation failed"},
	// InvalidArgument rather than ResourceExhausted: retry policies treat
	// ResourceExhausted as retryable, and resending the same body cannot help.
	PayloadTooLarge:  {413, codes.InvalidArgument, "Payload too large"},
	Unauthenticated:  {401, codes.Unauthenticated, "Unauthenticated"},
	TokenMissing:     {401, codes.Unauthenticated, "Access token missing"},
	TokenExpired:     {401, codes.Unauthenticated, "Access token expired"},
	TokenInvalid:     {401, codes.Unauthenticated, "Access token invalid"},
	Forbidden:        {403, codes.PermissionDenied, "Forbidden"},
	NotFound:         {404, codes.NotFound, "Not found"},
	MethodNotAllowed: {405, codes.Unimplemented, "Method not allowed"},
	Conflict:         {409, codes.AlreadyExists, "Conflict"},
	RateLimited:      {429, codes.ResourceExhausted, "Too many requests"},
	Unavailable:      {503, codes.Unavailable, "Service unavailable"},
	DeadlineExceeded: {504, codes.DeadlineExceeded, "Deadline exceeded"},
	Canceled:         {StatusClientClosedRequest, codes.Canceled, "Request canceled"},
	Internal:         {500, codes.Internal, "Internal error"},
}

// fromGRPC is THE reverse mapping, used when a gRPC status carries no Piazza
// ErrorInfo (it came from grpc-go itself, or from a foreign server). It is
// not the inverse of table: it picks the closest meaning for each gRPC code.
var fromGRPC = [...]Code{
	codes.OK:                 "", // not an error
	codes.Canceled:           Canceled,
	codes.Unknown:            Internal,
	codes.InvalidArgument:    ValidationFailed,
	codes.DeadlineExceeded:   DeadlineExceeded,
	codes.NotFound:           NotFound,
	codes.AlreadyExists:      Conflict,
	codes.PermissionDenied:   Forbidden,
	codes.ResourceExhausted:  RateLimited,
	codes.FailedPrecondition: Conflict,
	codes.Aborted:            Conflict,
	codes.OutOfRange:         ValidationFailed,
	// An unimplemented method is a deployment mismatch between our own
	// services, not something the end client did.
	codes.Unimplemented:   Internal,
	codes.Internal:        Internal,
	codes.Unavailable:     Unavailable,
	codes.DataLoss:        Internal,
	codes.Unauthenticated: Unauthenticated,
}

// Known reports whether c is one of the codes above.
func (c Code) Known() bool {
	_, ok := table[c]
	return ok
}

// HTTPStatus returns the HTTP status for c; unknown codes are 500.
func (c Code) HTTPStatus() int {
	if i, ok := table[c]; ok {
		return i.http
	}
	return 500
}

// GRPCCode returns the gRPC status code for c; unknown codes are Internal.
func (c Code) GRPCCode() codes.Code {
	if i, ok := table[c]; ok {
		return i.grpc
	}
	return codes.Internal
}

// Title returns a short, client-safe, human-readable summary of c (the
// problem-details title). Unknown codes get the Internal title.
func (c Code) Title() string {
	if i, ok := table[c]; ok {
		return i.title
	}
	return table[Internal].title
}

// Codes returns every known code, sorted.
func Codes() []Code {
	out := make([]Code, 0, len(table))
	for c := range table {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// CodeFromGRPC maps a gRPC status code to the closest Code. It is the
// fallback for statuses without Piazza details; codes.OK maps to "".
func CodeFromGRPC(c codes.Code) Code {
	if int(c) < len(fromGRPC) {
		return fromGRPC[c]
	}
	return Internal
}

// FieldViolation locates one problem in the request: Pointer is an RFC 6901
// JSON pointer into the request body ("/author/name", "" for the whole body),
// Detail a client-safe explanation.
type FieldViolation struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Field returns a FieldViolation; a shorthand for [Validation] arguments.
func Field(pointer, detail string) FieldViolation {
	return FieldViolation{Pointer: pointer, Detail: detail}
}

// Error is a Piazza error. Code, Message, Fields and RetryAfter are sent to
// clients; the cause (see [Error.Unwrap]) never is.
type Error struct {
	// Code is the machine-readable code.
	Code Code
	// Message is a client-safe explanation. For 5xx codes the HTTP layer
	// replaces it with a generic text anyway.
	Message string
	// Fields lists the offending fields of a ValidationFailed error.
	Fields []FieldViolation
	// RetryAfter, when positive, tells the client when to retry
	// (RateLimited, Unavailable).
	RetryAfter time.Duration

	cause error
}

// New returns an error with code and a client-safe message.
func New(code Code, msg string) *Error {
	return &Error{Code: code, Message: msg}
}

// Newf is New with a formatted message. The arguments end up in front of
// clients: format only client-safe values into it.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code and a client-safe message whose internal
// cause is err. It always returns a non-nil *Error, even for a nil err (a nil
// *Error in an error interface is a classic trap).
func Wrap(err error, code Code, msg string) *Error {
	return &Error{Code: code, Message: msg, cause: err}
}

// Validation returns a ValidationFailed error listing the offending fields.
func Validation(msg string, fields ...FieldViolation) *Error {
	return &Error{Code: ValidationFailed, Message: msg, Fields: fields}
}

// WithCause returns a copy of e whose internal cause is err. Handy with
// package-level sentinel errors, which must not be mutated.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.cause = err
	return &c
}

// WithRetryAfter returns a copy of e with RetryAfter set to d.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// Error describes e for logs: code, message and the internal cause. It is
// never sent to a client.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, " [%s: %s]", f.Pointer, f.Detail)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

// Unwrap returns the internal cause, so errors.Is/As see through e.
func (e *Error) Unwrap() error { return e.cause }

// From converts any error into an *Error: nil stays nil; an *Error anywhere
// in the chain is returned as is; context.DeadlineExceeded and
// context.Canceled become DeadlineExceeded and Canceled; a gRPC status error
// is decoded with [FromGRPCStatus]; anything else is Internal with a generic
// message and err as its cause.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Wrap(err, DeadlineExceeded, "The request ran out of time.")
	case errors.Is(err, context.Canceled):
		return Wrap(err, Canceled, "The request was canceled.")
	}
	if st, ok := grpcStatusOf(err); ok {
		if e := FromGRPCStatus(st); e != nil {
			e.cause = err
			return e
		}
	}
	return Wrap(err, Internal, "internal error")
}

// CodeOf returns the code of err as [From] sees it; "" for a nil err.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return From(err).Code
}

// Required reports every empty value of kv (name, value, name, value, …) as a
// validation_failed field violation at JSON pointer "/<name>", or returns nil when none is
// empty. Ports use it to check the shape of a request before calling their application.
func Required(kv ...string) error {
	var fields []FieldViolation
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			fields = append(fields, Field("/"+kv[i], "is required"))
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return Validation("The request is invalid: required fields are missing.", fields...)
}
