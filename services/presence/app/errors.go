package app

import (
	"errors"
	"strings"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// toError turns what a use case returned into the *errs.Error its caller gets:
//   - an *errs.Error passes unchanged;
//   - *domain.FieldError(s) become one validation_failed error with a field violation per
//     field at JSON pointer "/<field>";
//   - anything else goes through errs.From (context errors keep their meaning, the rest is an
//     internal error whose text stays in the cause, out of the client's reach).
func toError(err error) error {
	if e, ok := errors.AsType[*errs.Error](err); ok {
		return e
	}
	if fes := fieldErrors(err); len(fes) > 0 {
		var (
			fields []errs.FieldViolation
			msgs   []string
		)
		for _, fe := range fes {
			fields = append(fields, errs.Field("/"+fe.Field, fe.Err.Error()))
			msgs = append(msgs, fe.Error())
		}
		return errs.Validation("The request is invalid: "+strings.Join(msgs, "; ")+".", fields...).WithCause(err)
	}
	return errs.From(err)
}

// fieldErrors collects the *domain.FieldError in err's tree (joined errors included).
func fieldErrors(err error) []*domain.FieldError {
	if fe, ok := errors.AsType[*domain.FieldError](err); ok {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			var out []*domain.FieldError
			for _, e := range joined.Unwrap() {
				out = append(out, fieldErrors(e)...)
			}
			return out
		}
		return []*domain.FieldError{fe}
	}
	return nil
}
