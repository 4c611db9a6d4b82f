package sqlbus_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/platform/events/eventstest"
	"github.com/piazza-social/piazza/platform/events/sqlbus"
)

const wait = 10 * time.Second

func newBus(t *testing.T, cfg sqlbus.Config) *sqlbus.Bus {
	t.Helper()
	b, err := sqlbus.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("sqlbus.New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
}

func TestSQLiteBusMeetsTheBusContract(t *testing.T) {
	eventstest.RunBusContract(t, func(t *testing.T) events.Bus {
		return newBus(t, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	})
}

func msg(key, body string) *message.Message {
	m := message.NewMessage(uuid.NewString(), []byte(body))
	m.Metadata.Set(events.PartitionKey, key)
	return m
}

func subscribe(t *testing.T, b *sqlbus.Bus, group, topic string) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := b.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sub, ch
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %s", wait)
		return nil
	}
}

// expectNothing checks that no message arrives while the bus has had ample opportunity to send
// one: the log is empty for the group once the checked messages were acked.
func expectNothing(t *testing.T, ch <-chan *message.Message, within time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %s %q", m.UUID, m.Payload)
	case <-time.After(within):
	}
}

func TestAckedMessagesStayConsumedAndUnackedComeBackAfterReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	ctx := context.Background()

	first, err := sqlbus.New(ctx, sqlbus.Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := first.Subscriber("notifications")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, "post.events")
	if err != nil {
		t.Fatal(err)
	}
	a, bb, c := msg("author-1", `{"n":1}`), msg("author-1", `{"n":2}`), msg("author-1", `{"n":3}`)
	if err := first.Publish("post.events", a, bb, c); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch); got.UUID != a.UUID {
		t.Fatalf("received %s, want %s", got.UUID, a.UUID)
	} else {
		got.Ack()
	}
	held := receive(t, ch) // b: received, never acked
	if held.UUID != bb.UUID {
		t.Fatalf("received %s, want %s", held.UUID, bb.UUID)
	}
	if err := first.Close(); err != nil { // closes the subscription too, without waiting for b
		t.Fatalf("close: %v", err)
	}
	if _, open := <-ch; open {
		t.Fatal("subscription channel still open after the bus closed")
	}

	second := newBus(t, sqlbus.Config{Path: path})
	_, ch2 := subscribe(t, second, "notifications", "post.events")
	for _, want := range []*message.Message{bb, c} {
		got := receive(t, ch2)
		if got.UUID != want.UUID || string(got.Payload) != string(want.Payload) {
			t.Fatalf("after reopening received %s %q, want %s %q (a was acked and must not return)",
				got.UUID, got.Payload, want.UUID, want.Payload)
		}
		got.Ack()
	}
	expectNothing(t, ch2, 200*time.Millisecond)
}

func TestMessagesPublishedWhileNoSubscriberRunsAreDeliveredLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	first := newBus(t, sqlbus.Config{Path: path})
	sub, _ := subscribe(t, first, "g", "topic")
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	m := msg("k", `{"while":"away"}`)
	if err := first.Publish("topic", m); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := newBus(t, sqlbus.Config{Path: path})
	_, ch := subscribe(t, second, "g", "topic")
	if got := receive(t, ch); got.UUID != m.UUID {
		t.Fatalf("received %s, want %s", got.UUID, m.UUID)
	}
}

func TestNewGroupStartsAtTheEndOfTheLog(t *testing.T) {
	b := newBus(t, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	if err := b.Publish("topic", msg("k", `{"before":true}`)); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, b, "late", "topic")
	after := msg("k", `{"after":true}`)
	if err := b.Publish("topic", after); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch); got.UUID != after.UUID {
		t.Fatalf("a new group received %q, want only what was published after it subscribed", got.Payload)
	}
}

// With polling effectively off, every delivery below can only come from the in-process wake-up
// on publish. How fast it is, is measured by BenchmarkPublishToReceive, not asserted here.
func TestPublishWakesAWaitingSubscriberWithoutPolling(t *testing.T) {
	b := newBus(t, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db"), PollInterval: time.Hour})
	_, ch := subscribe(t, b, "g", "wake")
	for i := range 20 {
		if err := b.Publish("wake", msg(fmt.Sprintf("k%d", i%5), `{}`)); err != nil {
			t.Fatal(err)
		}
		receive(t, ch).Ack()
	}
}

func BenchmarkPublishToReceive(b *testing.B) {
	bus, err := sqlbus.New(context.Background(), sqlbus.Config{Path: filepath.Join(b.TempDir(), "events.db")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	sub, err := bus.Subscriber("g")
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := bus.Publish("bench", msg(fmt.Sprintf("k%d", i%5), `{}`)); err != nil {
			b.Fatal(err)
		}
		m := <-ch
		lat = append(lat, time.Since(start))
		m.Ack()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func TestConcurrentPublishersLoseNothingAndKeepPerKeyOrder(t *testing.T) {
	b := newBus(t, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	_, ch := subscribe(t, b, "g", "busy")
	const publishers, each = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			key := fmt.Sprintf("publisher-%d", p)
			for i := range each {
				if err := b.Publish("busy", msg(key, fmt.Sprintf(`%d`, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	got := map[string][]string{}
	for n := 0; n < publishers*each; n++ {
		m := receive(t, ch)
		key := m.Metadata.Get(events.PartitionKey)
		got[key] = append(got[key], string(m.Payload))
		m.Ack()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	for key, bodies := range got {
		want := make([]string, each)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if !slices.Equal(bodies, want) {
			t.Errorf("key %s: received %d messages out of order or with gaps: %v", key, len(bodies), bodies)
		}
	}
	if len(got) != publishers {
		t.Errorf("received from %d publishers, want %d", len(got), publishers)
	}
	expectNothing(t, ch, 100*time.Millisecond)
}

func TestPartitionsProgressIndependently(t *testing.T) {
	b := newBus(t, sqlbus.Config{Path: filepath.Join(t.TempDir(), "events.db")})
	_, ch := subscribe(t, b, "g", "lanes")
	// key-0's message stays unacked; of 16 other keys some hash to other partitions.
	blocked := msg("key-0", `{"slow":true}`)
	if err := b.Publish("lanes", blocked); err != nil {
		t.Fatal(err)
	}
	first := receive(t, ch)
	if first.UUID != blocked.UUID {
		t.Fatalf("received %s, want %s", first.UUID, blocked.UUID)
	}
	others := map[string]bool{}
	for i := 1; i <= 16; i++ {
		m := msg(fmt.Sprintf("key-%d", i), `{}`)
		others[m.UUID] = true
		if err := b.Publish("lanes", m); err != nil {
			t.Fatal(err)
		}
	}
	// While key-0's message is unacked, messages of other partitions still flow.
	got := receive(t, ch)
	if !others[got.UUID] {
		t.Fatalf("received %s, want one of the messages of other keys", got.UUID)
	}
	got.Ack()
	first.Ack()
}

func TestPruneDeletesOnlyWhatEveryGroupAcked(t *testing.T) {
	db := databasetest.OpenSQLite(t)
	b := newBus(t, sqlbus.Config{DB: db, Retention: time.Nanosecond, PruneInterval: -1})
	_, fast := subscribe(t, b, "fast", "t")
	_, slow := subscribe(t, b, "slow", "t")
	m1, m2 := msg("k", `1`), msg("k", `2`)
	if err := b.Publish("t", m1, m2); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("nobody-listens", msg("k", `dead letter`)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		receive(t, fast).Ack()
	}
	s := receive(t, slow)
	s.Ack() // slow acked m1 only; m2 stays in flight
	held := receive(t, slow)

	ctx := context.Background()
	// The ack is recorded right after the handler's Ack; poll until Prune sees it.
	deadline := time.Now().Add(wait)
	var deleted int64
	for deleted < 2 && time.Now().Before(deadline) {
		n, err := b.Prune(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deleted += n
		if deleted < 2 {
			time.Sleep(5 * time.Millisecond) // awaiting the ack's write, bounded by deadline
		}
	}
	if deleted != 2 {
		t.Fatalf("pruned %d messages, want 2 (m1, acked by both groups, and the unconsumed topic's)", deleted)
	}
	var left []string
	rows, err := db.SQL().QueryContext(ctx, `SELECT uuid FROM bus_messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	sort.Strings(left)
	if len(left) != 1 || left[0] != m2.UUID {
		t.Fatalf("left %v, want only m2 %s, which the slow group has not acked", left, m2.UUID)
	}
	held.Ack()
}

func TestNewRequiresADatabase(t *testing.T) {
	if _, err := sqlbus.New(context.Background(), sqlbus.Config{}, nil); err == nil {
		t.Fatal("New without DB or Path succeeded")
	}
}
