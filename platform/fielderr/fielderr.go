// Package fielderr ties a broken domain rule to the request field it is about, and collects
// several such violations into one error. Each service's domain defines its own rule error
// type R (a slug, a kind, a message); this package is the field-level wrapper they share, so
// that a service's application edge can turn every violation into a field pointer.
package fielderr

import "errors"

// Error is rule R broken by the input field Field (the field's name in the request, e.g.
// "username"; nested fields joined with "/").
type Error[R error] struct {
	Field string
	Err   R
}

// Error describes the violation as "field: message".
func (e *Error[R]) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the rule, so errors.Is sees through to the rule's sentinel.
func (e *Error[R]) Unwrap() error { return e.Err }

// All lists every *Error[R] in err's tree (errors.Join and wrapping included), in order; nil
// when there is none.
func All[R error](err error) []*Error[R] {
	var out []*Error[R]
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Error[R]:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// List collects violations; Err joins them.
type List[R error] []error

// Add records that field breaks rule.
func (l *List[R]) Add(field string, rule R) { *l = append(*l, &Error[R]{Field: field, Err: rule}) }

// Err returns the collected violations as one error, nil when there are none.
func (l List[R]) Err() error { return errors.Join(l...) }
