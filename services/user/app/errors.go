package app

import (
	"errors"
	"strings"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/user/domain"
)

// codes is THE mapping of domain error kinds to platform error codes.
var codes = map[domain.Kind]errs.Code{
	domain.KindInvalidInput:    errs.ValidationFailed,
	domain.KindConflict:        errs.Conflict,
	domain.KindNotFound:        errs.NotFound,
	domain.KindUnauthenticated: errs.Unauthenticated,
	domain.KindSessionEnded:    errs.TokenInvalid,
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
//   - *domain.FieldError(s) become one error whose code is the first field's kind, with a
//     field violation per field at JSON pointer "/<field>" (validation_failed, and also
//     conflict, so a client learns whether the username or the email is taken);
//   - a *domain.Error becomes its kind's code with its message;
//   - anything else goes through errs.From (context errors keep their meaning, the rest is an
//     internal error whose text stays in the cause, out of the client's reach).
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

// field ties a domain error to a request field.
func field(name string, err *domain.Error) error { return &domain.FieldError{Field: name, Err: err} }
