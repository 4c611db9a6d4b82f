package ports_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/services/deadletter/domain"
	"github.com/piazza-social/piazza/services/deadletter/ports"
)

const waitFor = 15 * time.Second

// archiver fails its first failures calls, then records what it archives.
type archiver struct {
	mu       sync.Mutex
	failures int
	calls    map[string]int
	archived chan string
}

func newArchiver(failures int) *archiver {
	return &archiver{failures: failures, calls: map[string]int{}, archived: make(chan string, 10)}
}

func (a *archiver) Archive(_ context.Context, l domain.Letter) (domain.Entry, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[l.UUID]++
	if a.failures != 0 {
		a.failures--
		return domain.Entry{}, false, errors.New("database is down")
	}
	a.archived <- l.UUID
	return domain.Entry{MessageID: l.UUID}, true, nil
}

func (a *archiver) callsFor(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

func newBus(t *testing.T) *sqlbus.Bus {
	t.Helper()
	bus, err := sqlbus.New(t.Context(), sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db"), NackResendDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// start runs a consumer of bus's dead letters with arch, and returns a function that stops it
// and returns Run's result.
func start(t *testing.T, bus *sqlbus.Bus, arch ports.Archiver) (stop func() error) {
	t.Helper()
	sub, err := bus.Subscriber("deadletter-archive")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ports.NewConsumer(ports.ConsumerConfig{
		Subscriber: sub, Archiver: arch,
		RetryInitialInterval: time.Millisecond, RetryMaxInterval: 4 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Running():
	case err := <-done:
		t.Fatalf("consumer stopped: %v", err)
	case <-time.After(waitFor):
		t.Fatal("consumer not running")
	}
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(waitFor):
				result = errors.New("Run did not return after cancellation")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func deadLetter() *message.Message {
	m := message.NewMessage(uuid.NewString(), []byte("payload"))
	m.Metadata.Set(events.MetadataPoisonTopic, "posts")
	return m
}

func awaitArchived(t *testing.T, a *archiver, id string) {
	t.Helper()
	for {
		select {
		case got := <-a.archived:
			if got == id {
				return
			}
		case <-time.After(waitFor):
			t.Fatalf("%s not archived within %s", id, waitFor)
		}
	}
}

func TestStoreFailuresAreRetriedUntilTheDeadLetterIsArchived(t *testing.T) {
	bus := newBus(t)
	arch := newArchiver(3)
	stop := start(t, bus, arch)
	m := deadLetter()
	if err := bus.Publish(events.DeadLetterTopic, m); err != nil {
		t.Fatal(err)
	}
	awaitArchived(t, arch, m.UUID)
	if got := arch.callsFor(m.UUID); got != 4 {
		t.Fatalf("archive called %d times, want 3 failures and 1 success", got)
	}
	// Acked once archived: the next dead letter comes through.
	next := deadLetter()
	if err := bus.Publish(events.DeadLetterTopic, next); err != nil {
		t.Fatal(err)
	}
	awaitArchived(t, arch, next.UUID)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestDeadLetterNotArchivedAtShutdownIsDeliveredToTheNextConsumer(t *testing.T) {
	bus := newBus(t)
	failing := newArchiver(-1) // fails forever
	stop := start(t, bus, failing)
	m := deadLetter()
	if err := bus.Publish(events.DeadLetterTopic, m); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for failing.callsFor(m.UUID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dead letter never reached the archiver")
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	healthy := newArchiver(0)
	start(t, bus, healthy)
	awaitArchived(t, healthy, m.UUID)
}

func TestRunFailsWhenTheSubscriptionEndsOnItsOwn(t *testing.T) {
	bus := newBus(t)
	sub, err := bus.Subscriber("deadletter-archive")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ports.NewConsumer(ports.ConsumerConfig{Subscriber: sub, Archiver: newArchiver(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context()) }()
	<-c.Running()
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its subscription ended with ctx still alive")
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after the bus closed")
	}
}

func TestNewConsumerValidatesConfig(t *testing.T) {
	bus := newBus(t)
	sub, err := bus.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]ports.ConsumerConfig{
		"no subscriber":          {Archiver: newArchiver(0)},
		"no archiver":            {Subscriber: sub},
		"max below initial":      {Subscriber: sub, Archiver: newArchiver(0), RetryInitialInterval: time.Second, RetryMaxInterval: time.Millisecond},
		"negative initial retry": {Subscriber: sub, Archiver: newArchiver(0), RetryInitialInterval: -time.Second},
	} {
		if _, err := ports.NewConsumer(cfg, nil); err == nil {
			t.Errorf("%s: NewConsumer accepted it", name)
		}
	}
}
