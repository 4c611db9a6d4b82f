package notification_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/notification"
	"github.com/piazza-social/piazza/services/notification/app"
	"github.com/piazza-social/piazza/services/notification/ports"
)

const waitFor = 10 * time.Second

// ---------------------------------------------------------------------------------- fakes

type followers map[string][]string

func (f followers) Each(_ context.Context, userID string, batch func([]string) error) error {
	if ids := f[userID]; len(ids) > 0 {
		return batch(ids)
	}
	return nil
}

type users map[string]string

func (u users) Usernames(_ context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range ids {
		if n, ok := u[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

// offline is a presence.Store in which nobody is ever online.
type offline struct{}

func (offline) Register(context.Context, presence.Connection, time.Duration) (bool, error) {
	return true, nil
}
func (offline) Refresh(context.Context, presence.Connection, time.Duration) error { return nil }
func (offline) Unregister(context.Context, presence.Connection) (bool, error)     { return true, nil }
func (offline) Routes(context.Context, []string) (map[string][]string, error) {
	return map[string][]string{}, nil
}
func (offline) Online(context.Context, string) (bool, error) { return false, nil }

type pushes struct {
	mu sync.Mutex
	n  int
}

func (p *pushes) Publish(context.Context, string, []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return nil
}

func migrated(t *testing.T) *database.DB {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if err := notification.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func deps(db *database.DB) notification.Deps {
	return notification.Deps{
		DB:        db,
		Followers: followers{},
		Users:     users{"liker": "lee", "fan": "fanny"},
		Presence:  offline{},
		Push:      &pushes{},
	}
}

// ---------------------------------------------------------------------------------- tests

func TestNewRefusesMissingDependencies(t *testing.T) {
	full := deps(migrated(t))
	if _, err := notification.New(notification.Config{}, full, nil); err != nil {
		t.Fatalf("New with every dependency: %v", err)
	}
	for name, mutate := range map[string]func(d *notification.Deps){
		"no database":  func(d *notification.Deps) { d.DB = nil },
		"no followers": func(d *notification.Deps) { d.Followers = nil },
		"no users":     func(d *notification.Deps) { d.Users = nil },
		"no presence":  func(d *notification.Deps) { d.Presence = nil },
		"no push":      func(d *notification.Deps) { d.Push = nil },
	} {
		d := full
		mutate(&d)
		if _, err := notification.New(notification.Config{}, d, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := notification.New(notification.Config{FanoutBatch: 5001}, full, nil); err == nil {
		t.Error("New accepted a fan-out batch above the limit")
	}
}

func TestMigrateIsRepeatable(t *testing.T) {
	db := migrated(t) // applied once already
	if err := notification.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
}

// routed runs svc's handlers under the real router on a fresh embedded bus and returns the
// bus and the messages arriving on the dead letters.
func routed(t *testing.T, svc *notification.Service) (events.Bus, <-chan *message.Message) {
	t.Helper()
	ctx := t.Context()
	bus, err := sqlbus.New(ctx, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	watcher, err := bus.Subscriber("dead-letter-watcher")
	if err != nil {
		t.Fatal(err)
	}
	deadLetters, err := watcher.Subscribe(ctx, events.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	router, err := events.NewRouter(events.RouterConfig{
		DeadLetters:  bus,
		Retry:        events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond},
		CloseTimeout: 5 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.AddHandlers(router, bus); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- router.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("router did not stop")
		}
	})
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped: %v", err)
	case <-time.After(waitFor):
		t.Fatal("router not running")
	}
	return bus, deadLetters
}

// awaitUnread waits until userID has want unread notifications.
func awaitUnread(t *testing.T, svc *notification.Service, userID string, want int64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		u, err := svc.App().UnreadCount.Handle(t.Context(), app.UnreadCount{UserID: userID})
		if err != nil {
			t.Fatal(err)
		}
		if u.Count == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d notifications, want %d", userID, u.Count, want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// awaitDeadLetter waits for the next dead letter and checks that it is env, failed once by
// handler on topic.
func awaitDeadLetter(t *testing.T, deadLetters <-chan *message.Message, env events.Envelope, handler, topic string) {
	t.Helper()
	select {
	case dl := <-deadLetters:
		dl.Ack()
		md := dl.Metadata
		if dl.UUID != env.ID || md.Get(events.MetadataPoisonHandler) != handler ||
			md.Get(events.MetadataPoisonTopic) != topic || md.Get(events.MetadataPoisonAttempts) != "1" {
			t.Fatalf("dead letter %s with %v; want %s from %s on %s after 1 attempt", dl.UUID, md, env.ID, handler, topic)
		}
	case <-time.After(waitFor):
		t.Fatal("the malformed event did not reach the dead letters")
	}
}

// Through the real router on the embedded bus: a post.liked whose payload does not fit its
// type lands in dead_letters at once, and the events after it on the same partition, on both
// topics, are processed.
func TestMalformedEventIsDeadLetteredAndTheNextEventsAreProcessed(t *testing.T) {
	svc, err := notification.New(notification.Config{}, deps(migrated(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus, deadLetters := routed(t, svc)

	malformed := mustEnvelope(t, eventsv1.PostLiked, "author", map[string]any{})
	malformed.Payload = json.RawMessage(`{"post_id": 42, "author_id": "author", "liker_id": "liker"}`)
	like := mustEnvelope(t, eventsv1.PostLiked, "author", eventsv1.PostLikedPayload{PostID: "p1", AuthorID: "author", LikerID: "liker"})
	follow := mustEnvelope(t, eventsv1.UserFollowed, "fan", eventsv1.UserFollowedPayload{FollowerID: "fan", FollowerUsername: "fanny", FolloweeID: "author"})
	publish(t, bus, eventsv1.TopicPosts, malformed, like)
	publish(t, bus, eventsv1.TopicUsers, follow)

	// Both good events reach the author's inbox.
	awaitUnread(t, svc, "author", 2)
	awaitDeadLetter(t, deadLetters, malformed, ports.PostsHandler, eventsv1.TopicPosts)
}

// Through the real router on the embedded bus: message.sent on topic "messages" reaches every
// participant but the sender, and one that lacks its participants is dead-lettered by handler
// notification.messages.
func TestMessageSentOnTopicMessagesReachesTheOtherParticipants(t *testing.T) {
	svc, err := notification.New(notification.Config{}, deps(migrated(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus, deadLetters := routed(t, svc)

	malformed := mustEnvelope(t, eventsv1.MessageSent, "conv-1", eventsv1.MessageSentPayload{
		MessageID: "m0", ConversationID: "conv-1", SenderID: "liker", Text: "to nobody",
	})
	sent := mustEnvelope(t, eventsv1.MessageSent, "conv-1", eventsv1.MessageSentPayload{
		MessageID: "m1", ConversationID: "conv-1", SenderID: "liker", ParticipantIDs: []string{"liker", "author", "fan"},
		Text: "hello both", ClientMsgID: "c1", SentAt: time.Now(),
	})
	publish(t, bus, eventsv1.TopicMessages, malformed, sent)

	awaitUnread(t, svc, "author", 1)
	awaitUnread(t, svc, "fan", 1)
	awaitDeadLetter(t, deadLetters, malformed, ports.MessagesHandler, eventsv1.TopicMessages)
	p, err := svc.App().ListNotifications.Handle(t.Context(), app.ListNotifications{UserID: "author"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.Items[0].EventID != sent.ID || p.Items[0].Type != eventsv1.MessageSent {
		t.Fatalf("author's inbox %+v, want the message", p.Items)
	}
	if u, err := svc.App().UnreadCount.Handle(t.Context(), app.UnreadCount{UserID: "liker"}); err != nil || u.Count != 0 {
		t.Fatalf("the sender has %+v (%v) notifications, want none", u, err)
	}
}

func mustEnvelope(t *testing.T, typ, aggregate string, payload any) events.Envelope {
	t.Helper()
	env, err := events.New(typ, aggregate, "test", payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func publish(t *testing.T, bus events.Bus, topic string, envs ...events.Envelope) {
	t.Helper()
	msgs := make([]*message.Message, len(envs))
	for i, env := range envs {
		m, err := events.NewMessage(t.Context(), env, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	if err := bus.Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
}
