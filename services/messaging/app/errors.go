package app

import (
	"errors"
	"strings"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/messaging/domain"
)

// codes is THE mapping of domain error kinds to platform error codes.
var codes = map[domain.Kind]errs.Code{
	domain.KindInvalidInput: errs.ValidationFailed,
	domain.KindNotFound:     errs.NotFound,
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
//   - *domain.FieldError(s) become one validation_failed error with a field violation per
//     field at JSON pointer "/<field>";
//   - a *domain.Error becomes its kind's code with its message;
//   - anything else goes through errs.From: context errors keep their meaning, and the rest is
//     an internal error whose text stays in the cause, out of the client's reach.
func toError(err error) error {
	if e, ok := errors.AsType[*errs.Error](err); ok {
		return e
	}
	if fes := domain.FieldErrors(err); len(fes) > 0 {
		code := CodeOf(fes[0].Err.Kind())
		out := &errs.Error{Code: code}
		var msgs []string
		for _, fe := range fes {
			out.Fields = append(out.Fields, errs.Field("/"+fe.Field, fe.Err.Error()))
			msgs = append(msgs, fe.Error())
		}
		out.Message = strings.Join(msgs, "; ")
		if code == errs.ValidationFailed {
			out.Message = "The request is invalid: " + out.Message
		}
		return out.WithCause(err)
	}
	if de, ok := errors.AsType[*domain.Error](err); ok {
		return errs.Wrap(err, CodeOf(de.Kind()), de.Error())
	}
	return errs.From(err)
}
