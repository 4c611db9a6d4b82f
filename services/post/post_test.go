package post_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/outbox"
	"github.com/piazza-social/piazza/services/post"
	"github.com/piazza-social/piazza/services/post/adapters/storetest"
	"github.com/piazza-social/piazza/services/post/app"
)

type graph map[string][]string

func (g graph) FollowedIDs(_ context.Context, userID string) ([]string, error) { return g[userID], nil }

func TestNewRefusesMissingDependencies(t *testing.T) {
	_, ob, db := storetest.OpenSQLiteStore(t)
	for name, deps := range map[string]post.Deps{
		"no database":     {Outbox: ob, Follows: graph{}},
		"no outbox":       {DB: db, Follows: graph{}},
		"no follow graph": {DB: db, Outbox: ob},
	} {
		if _, err := post.New(post.Config{}, deps, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestMigrateIsRepeatable(t *testing.T) {
	_, _, db := storetest.OpenSQLiteStore(t) // applied once already
	if err := post.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
}

// publisher records what the outbox forwarder publishes.
type publisher struct {
	mu   sync.Mutex
	msgs map[string][]*message.Message
}

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs[topic] = append(p.msgs[topic], msgs...)
	return nil
}

func (p *publisher) Close() error { return nil }

func (p *publisher) published(topic string) []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs[topic])
}

// The service runs on the platform's outbox as it is: its events reach the bus on topic
// "posts", partitioned by the post author's id, in the order they happened.
func TestEventsLeaveThroughThePlatformOutboxKeyedByTheAuthor(t *testing.T) {
	ctx := t.Context()
	db := databasetest.OpenSQLite(t)
	if err := post.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := database.Migrate(ctx, db, outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	pub := &publisher{msgs: map[string][]*message.Message{}}
	fwd, err := outbox.NewForwarder(outbox.ForwarderConfig{Outbox: ob, Publisher: pub, PollInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := post.New(post.Config{}, post.Deps{DB: db, Outbox: ob, Follows: graph{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fwd.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	}()

	a := svc.App()
	alice, bob := storetest.NewID(t), storetest.NewID(t)
	p, err := a.CreatePost.Handle(ctx, app.CreatePost{CallerID: alice, Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := a.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: bob}); return err },
		func() error { _, err := a.LikePost.Handle(ctx, app.LikePost{ID: p.ID, CallerID: bob}); return err },
		func() error { _, err := a.UnlikePost.Handle(ctx, app.UnlikePost{ID: p.ID, CallerID: bob}); return err },
		func() error {
			_, err := a.AddComment.Handle(ctx, app.AddComment{PostID: p.ID, CallerID: bob, Text: "hi"})
			return err
		},
		func() error {
			_, err := a.DeletePost.Handle(ctx, app.DeletePost{ID: p.ID, CallerID: alice})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	want := []string{eventsv1.PostCreated, eventsv1.PostLiked, eventsv1.PostCommented, eventsv1.PostDeleted}
	deadline := time.Now().Add(10 * time.Second)
	for len(pub.published(eventsv1.TopicPosts)) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("published %d events, want %d", len(pub.published(eventsv1.TopicPosts)), len(want))
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	var got []string
	for _, msg := range pub.published(eventsv1.TopicPosts) {
		env, err := events.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, env.Type)
		if key := msg.Metadata.Get(events.PartitionKey); key != alice || env.AggregateID != alice || env.Producer != "post-service" {
			t.Errorf("%s: partition key %q, aggregate %q, producer %q; want the author %q", env.Type, key, env.AggregateID, env.Producer, alice)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
}
