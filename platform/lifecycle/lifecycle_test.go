package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/lifecycle"
	"github.com/piazza-social/piazza/platform/logging"
)

func waitForCancel(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestRunReturnsNilWhenTheContextIsCancelled(t *testing.T) {
	g := lifecycle.New(logging.Discard())
	stopped := make(chan string, 2)
	for _, name := range []string{"http", "consumer"} {
		g.Add(name, func(ctx context.Context) error {
			<-ctx.Done()
			stopped <- name
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("clean shutdown returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if len(stopped) != 2 {
		t.Fatalf("want both parts stopped, got %d", len(stopped))
	}
}

func TestAFailingPartStopsTheOthersAndIsNamed(t *testing.T) {
	g := lifecycle.New(logging.Discard())
	g.Add("healthy", waitForCancel)
	g.Add("broken", func(context.Context) error { return errors.New("port in use") })
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broken: port in use") {
		t.Fatalf("want the broken part's error, got %v", err)
	}
}

func TestAPartThatStopsByItselfStopsTheGroup(t *testing.T) {
	g := lifecycle.New(logging.Discard())
	g.Add("healthy", waitForCancel)
	g.Add("quitter", func(context.Context) error { return nil })
	err := g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "quitter: stopped unexpectedly") {
		t.Fatalf("want an unexpected-stop error, got %v", err)
	}
}
