package stream_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/gateway/stream"
)

// Minimal fakes for the hub's ports. The hub's behaviour is tested through the gateway (real
// HTTP, package gateway's tests); these serve the construction tests and the benchmarks.

type emptyInbox struct{}

func (emptyInbox) ListSince(context.Context, *notificationv1.ListSinceRequest, ...grpc.CallOption) (*notificationv1.ListSinceResponse, error) {
	return &notificationv1.ListSinceResponse{}, nil
}

func (emptyInbox) UnreadCount(context.Context, *notificationv1.UnreadCountRequest, ...grpc.CallOption) (*notificationv1.UnreadCountResponse, error) {
	return &notificationv1.UnreadCountResponse{}, nil
}

type nopPresence struct{}

func (nopPresence) Register(context.Context, presence.Connection, time.Duration) (bool, error) {
	return true, nil
}
func (nopPresence) Refresh(context.Context, presence.Connection, time.Duration) error { return nil }
func (nopPresence) Unregister(context.Context, presence.Connection) (bool, error)     { return true, nil }

type nopEvents struct{}

func (nopEvents) Publish(context.Context, string, ...events.Envelope) error { return nil }

// chanPush hands out one channel.
type chanPush struct {
	once sync.Once
	ch   chan []byte
}

func (p *chanPush) Subscribe(ctx context.Context, _ string) (<-chan []byte, error) {
	p.once.Do(func() { p.ch = make(chan []byte) })
	return p.ch, nil
}

func validConfig() stream.Config {
	return stream.Config{InstanceID: "gw", Push: &chanPush{}, Inbox: emptyInbox{}, Presence: nopPresence{}, Events: nopEvents{}}
}

func TestNewHubRequiresEveryDependency(t *testing.T) {
	for name, edit := range map[string]func(*stream.Config){
		"instance id": func(c *stream.Config) { c.InstanceID = "" },
		"push":        func(c *stream.Config) { c.Push = nil },
		"inbox":       func(c *stream.Config) { c.Inbox = nil },
		"presence":    func(c *stream.Config) { c.Presence = nil },
		"events":      func(c *stream.Config) { c.Events = nil },
	} {
		cfg := validConfig()
		edit(&cfg)
		if _, err := stream.NewHub(cfg, logging.Discard()); err == nil {
			t.Errorf("without %s: no error", name)
		}
	}
	if _, err := stream.NewHub(validConfig(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
}

func TestAHubThatDoesNotRunRefusesStreams(t *testing.T) {
	hub, err := stream.NewHub(validConfig(), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodGet, "/v1/events", nil)
	if err := hub.Serve(nil, r, stream.Client{UserID: "u"}); err == nil {
		t.Fatal("Serve before Run: no error")
	}
}

func TestAHubRunsOnce(t *testing.T) {
	hub, err := stream.NewHub(validConfig(), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	<-hub.Ready()
	if err := hub.Run(ctx); err == nil {
		t.Error("a second Run: no error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
