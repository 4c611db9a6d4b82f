package app

import (
	"errors"
	"strings"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// codes is THE mapping of domain error kinds to platform error codes. KindInvalidEvent never
// reaches a client: the event handler dead-letters such events instead.
var codes = map[domain.Kind]errs.Code{
	domain.KindInvalidInput: errs.ValidationFailed,
	domain.KindInvalidEvent: errs.Internal,
}

// CodeOf returns the platform code a domain error of kind k maps to (internal for an unknown
// kind).
func CodeOf(k domain.Kind) errs.Code {
	if c, ok := codes[k]; ok {
		return c
	}
	return errs.Internal
}

// toError turns what a use case returned into the *errs.Error its caller gets:
//   - an *errs.Error passes unchanged;
//   - *domain.FieldError(s) become one error with a field violation per field at JSON pointer
//     "/<field>", coded by the first field's kind;
//   - a *domain.Error becomes its kind's code with its message;
//   - anything else goes through errs.From (context errors keep their meaning, the rest is an
//     internal error whose text stays in the cause, out of the client's reach).
func toError(err error) error {
	if e, ok := errors.AsType[*errs.Error](err); ok {
		return e
	}
	if fes := domain.FieldErrors(err); len(fes) > 0 {
		out := &errs.Error{Code: CodeOf(fes[0].Err.Kind())}
		var msgs []string
		for _, fe := range fes {
			out.Fields = append(out.Fields, errs.Field("/"+fe.Field, fe.Err.Error()))
			msgs = append(msgs, fe.Error())
		}
		out.Message = "The request is invalid: " + strings.Join(msgs, "; ")
		return out.WithCause(err)
	}
	if de, ok := errors.AsType[*domain.Error](err); ok {
		return errs.Wrap(err, CodeOf(de.Kind()), de.Error())
	}
	return errs.From(err)
}

// field ties a domain error to a request field.
func field(name string, err *domain.Error) error { return &domain.FieldError{Field: name, Err: err} }
