//go:build !failpoints

package process

import (
	"errors"
	"log/slog"

	"github.com/piazza-social/piazza/platform/events"
)

// handlerDecorator refuses a failpoint in a production build: failpoints exist only in
// binaries built with -tags failpoints (the end-to-end tests build one).
func handlerDecorator(failpoint string, _ *slog.Logger) (func(string, events.Handler) events.Handler, error) {
	if failpoint != "" {
		return nil, errors.New("this binary was built without failpoints (go build -tags failpoints)")
	}
	return nil, nil
}
