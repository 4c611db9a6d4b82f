//go:build failpoints

package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/piazza-social/piazza/platform/events"
)

// handlerDecorator makes every event handler fail the events of one type while a file exists:
// the end-to-end tests inject a fault with it (create the file), watch the event go to
// dead_letters after the configured attempts, remove the fault (delete the file) and replay it.
// Only binaries built with -tags failpoints contain this.
func handlerDecorator(failpoint string, log *slog.Logger) (func(string, events.Handler) events.Handler, error) {
	if failpoint == "" {
		return nil, nil
	}
	eventType, path, ok := strings.Cut(failpoint, "@")
	if !ok || eventType == "" || path == "" {
		return nil, fmt.Errorf("want TYPE@PATH, got %q", failpoint)
	}
	log.Warn("failpoint armed", "event_type", eventType, "while_file_exists", path)
	return func(name string, h events.Handler) events.Handler {
		return func(ctx context.Context, ev events.Envelope) error {
			if ev.Type == eventType {
				if _, err := os.Stat(path); err == nil {
					return fmt.Errorf("failpoint: %s fails %s while %s exists", name, eventType, path)
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return h(ctx, ev)
		}
	}, nil
}
