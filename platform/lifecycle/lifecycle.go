// Package lifecycle runs a process's long-running parts together. Each part is a function
// Run(ctx) error that returns when ctx is cancelled; the group cancels every part as soon as one
// fails or the process receives SIGINT/SIGTERM, waits for all of them to return, and reports the
// first real failure. Shutdown work (draining HTTP, stopping consumers) belongs to each part's
// Run; flushing telemetry happens after the group returns.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// RunFunc is one long-running part.
type RunFunc func(ctx context.Context) error

// Group is a set of named parts run together. The zero value is not usable; use New.
type Group struct {
	log   *slog.Logger
	parts []part
}

type part struct {
	name string
	run  RunFunc
}

// New returns an empty group that logs each part's start and end to log.
func New(log *slog.Logger) *Group { return &Group{log: log} }

// Add registers a part. Parts start in the order added.
func (g *Group) Add(name string, run RunFunc) { g.parts = append(g.parts, part{name, run}) }

// Run starts every part and blocks until all have returned. A part returning (with or without an
// error) before ctx is done cancels the others: a process whose server stopped by itself must not
// linger half-alive. Run returns the first error that is not the result of cancellation, wrapped
// with the part's name, or nil after a clean shutdown.
func (g *Group) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range g.parts {
		eg.Go(func() error {
			start := time.Now()
			err := p.run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				g.log.ErrorContext(ctx, "stopped with error", "part", p.name, "error", err)
				return fmt.Errorf("%s: %w", p.name, err)
			}
			g.log.DebugContext(ctx, "stopped", "part", p.name, "ran_for", time.Since(start).Round(time.Millisecond).String())
			if ctx.Err() == nil {
				return fmt.Errorf("%s: stopped unexpectedly", p.name)
			}
			return nil
		})
	}
	return eg.Wait()
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM. A second signal is left to the
// default action (the process dies), so an operator can still force a stuck shutdown.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore default handling for the second signal
	}()
	return ctx, stop
}
