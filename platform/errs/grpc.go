package errs

import (
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// GRPCStatus encodes e as a gRPC status: the table's gRPC code, the
// client-safe message, and details carrying the exact code
// (errdetails.ErrorInfo{Reason: code, Domain: [Domain]}), the field
// violations (errdetails.BadRequest) and RetryAfter (errdetails.RetryInfo).
// The cause is not included.
//
// Having this method makes status.FromError and status.Convert understand an
// *Error directly, so a handler may return one as is.
func (e *Error) GRPCStatus() *status.Status {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Title()
	}
	st := status.New(e.Code.GRPCCode(), msg)
	details := make([]protoadapt.MessageV1, 0, 3)
	details = append(details, &errdetails.ErrorInfo{Reason: string(e.Code), Domain: Domain})
	if len(e.Fields) > 0 {
		br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(e.Fields))}
		for i, f := range e.Fields {
			br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{Field: f.Pointer, Description: f.Detail}
		}
		details = append(details, br)
	}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		// Only fails if a detail cannot be marshalled, which these cannot;
		// the bare status still carries the right gRPC code.
		return st
	}
	return withDetails
}

// GRPCStatus returns the status a gRPC server sends for err: nil for nil; an
// *Error in the chain is encoded with [Error.GRPCStatus]; a foreign gRPC
// status error (one not made by this package) passes through unchanged, so
// a proxying handler keeps its details; anything else goes through [From]
// (context errors keep their meaning, the rest is a generic Internal).
func GRPCStatus(err error) *status.Status {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.GRPCStatus()
	}
	if st, ok := grpcStatusOf(err); ok {
		return st
	}
	return From(err).GRPCStatus()
}

// FromGRPCStatus decodes a status into an *Error (nil for nil or OK). The
// code comes from a Piazza ErrorInfo detail when present and known, and
// from [CodeFromGRPC] otherwise; BadRequest and RetryInfo details restore
// Fields and RetryAfter. The status error itself becomes the cause.
func FromGRPCStatus(st *status.Status) *Error {
	if st == nil || st.Code() == codes.OK {
		return nil
	}
	e := &Error{Code: CodeFromGRPC(st.Code()), Message: st.Message(), cause: st.Err()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if c := Code(d.GetReason()); d.GetDomain() == Domain && c.Known() {
				e.Code = c
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.Fields = append(e.Fields, FieldViolation{Pointer: v.GetField(), Detail: v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay().IsValid() {
				e.RetryAfter = max(d.GetRetryDelay().AsDuration(), time.Duration(0))
			}
		}
	}
	return e
}

// grpcStatusOf finds a gRPC status in err's chain, like status.FromError but
// without its "Unknown" fallback for plain errors.
func grpcStatusOf(err error) (*status.Status, bool) {
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return nil, false
	}
	st := gs.GRPCStatus()
	if st == nil {
		return nil, false
	}
	return st, true
}
