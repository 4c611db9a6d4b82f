// Package pushtest holds the contract suite every push.Publisher and push.Subscriber adapter
// passes.
package pushtest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/push"
)

// patience bounds every wait: far above what a working adapter needs, so only a broken (or
// blocked) one reaches it.
const patience = 30 * time.Second

// Run runs the contract. newPubSub(t) returns a publisher and a subscriber connected to each
// other (the same Memory, or two Redis adapters on the same server and prefix) that no other
// test uses, with the default buffer.
func Run(t *testing.T, newPubSub func(t *testing.T) (push.Publisher, push.Subscriber)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"MessageReachesOnlyItsInstance", testRouting},
		{"MessagesOfOnePublisherArriveInOrder", testOrder},
		{"MessagePublishedAfterSubscribeReturnedIsDelivered", testSubscribeThenPublish},
		{"EverySubscriptionOfAnInstanceReceives", testTwoSubscriptions},
		{"SlowReceiverNeverBlocksPublish", testSlowReceiver},
		{"CancellingTheContextClosesTheChannel", testCancel},
		{"PublishingToNobodyIsNoError", testNobody},
		{"ReceivedMessageIsACopy", testCopy},
		{"EmptyInstanceIsRejected", testEmptyInstance},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub, sub := newPubSub(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			tc.fn(t, &harness{t: t, ctx: ctx, pub: pub, sub: sub, run: uuid.NewString()[:8]})
		})
	}
}

type harness struct {
	t   *testing.T
	ctx context.Context
	pub push.Publisher
	sub push.Subscriber
	run string
}

func (h *harness) instance(name string) string { return "gw-" + name + "-" + h.run }

func (h *harness) subscribe(instance string) <-chan []byte {
	h.t.Helper()
	ch, err := h.sub.Subscribe(h.ctx, instance)
	if err != nil {
		h.t.Fatalf("Subscribe(%s): %v", instance, err)
	}
	return ch
}

func (h *harness) publish(instance, msg string) {
	h.t.Helper()
	if err := h.pub.Publish(h.ctx, instance, []byte(msg)); err != nil {
		h.t.Fatalf("Publish(%s, %q): %v", instance, msg, err)
	}
}

func (h *harness) receive(ch <-chan []byte) string {
	h.t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			h.t.Fatal("subscription channel closed")
		}
		return string(m)
	case <-time.After(patience):
		h.t.Fatalf("nothing received within %s", patience)
		return ""
	}
}

func (h *harness) expect(ch <-chan []byte, want string) {
	h.t.Helper()
	if got := h.receive(ch); got != want {
		h.t.Fatalf("received %q, want %q", got, want)
	}
}

func testRouting(t *testing.T, h *harness) {
	a, b := h.instance("a"), h.instance("b")
	chA, chB := h.subscribe(a), h.subscribe(b)
	h.publish(a, "for-a")
	// Deliveries from one publisher keep their order, so had "for-a" gone to b as well, b
	// would receive it before its own marker.
	h.publish(b, "for-b")
	h.expect(chA, "for-a")
	h.expect(chB, "for-b")
}

func testOrder(t *testing.T, h *harness) {
	a := h.instance("a")
	ch := h.subscribe(a)
	const n = 500 // below the default buffer: nothing may be dropped
	for i := range n {
		h.publish(a, strconv.Itoa(i))
	}
	for i := range n {
		h.expect(ch, strconv.Itoa(i))
	}
}

func testSubscribeThenPublish(t *testing.T, h *harness) {
	// Repeated, because a subscription confirmed late loses only a message published at once.
	for i := range 20 {
		inst := h.instance("fresh-" + strconv.Itoa(i))
		ch := h.subscribe(inst)
		h.publish(inst, "hello")
		h.expect(ch, "hello")
	}
}

func testTwoSubscriptions(t *testing.T, h *harness) {
	a := h.instance("a")
	first, second := h.subscribe(a), h.subscribe(a)
	h.publish(a, "both")
	h.expect(first, "both")
	h.expect(second, "both")
}

func testSlowReceiver(t *testing.T, h *harness) {
	a := h.instance("stalled")
	ch := h.subscribe(a) // nobody reads it while the flood is published
	const flood = 5 * push.DefaultBuffer
	done := make(chan error, 1)
	go func() {
		for i := range flood {
			if err := h.pub.Publish(h.ctx, a, []byte("flood-"+strconv.Itoa(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish during the flood: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("%d publishes to a receiver that does not read did not return within %s: Publish blocks", flood, patience)
	}
	// The subscription survived: once the receiver has caught up, new messages arrive. The
	// buffer may still be full when the first marker is published, so a marker is published
	// again whenever the channel has been idle for a moment.
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed after the flood")
			}
			if string(m) == "after" {
				return
			}
		case <-time.After(20 * time.Millisecond):
			h.publish(a, "after")
		}
	}
	t.Fatalf("no message published after the flood arrived within %s", patience)
}

func testCancel(t *testing.T, h *harness) {
	a := h.instance("a")
	ctx, cancel := context.WithCancel(h.ctx)
	ch, err := h.sub.Subscribe(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	h.publish(a, "before")
	h.expect(ch, "before")
	cancel()
	deadline := time.After(patience)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				h.publish(a, "after") // no subscriber left: still no error
				return
			}
		case <-deadline:
			t.Fatalf("channel still open %s after its context was cancelled", patience)
		}
	}
}

func testNobody(t *testing.T, h *harness) {
	h.publish(h.instance("nobody"), "lost")
}

func testCopy(t *testing.T, h *harness) {
	a := h.instance("a")
	ch := h.subscribe(a)
	buf := []byte("original")
	if err := h.pub.Publish(h.ctx, a, buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "CHANGED!")
	h.expect(ch, "original")
}

func testEmptyInstance(t *testing.T, h *harness) {
	err := h.pub.Publish(h.ctx, "", []byte("x"))
	_, serr := h.sub.Subscribe(h.ctx, "")
	for what, err := range map[string]error{"Publish": err, "Subscribe": serr} {
		if !errors.Is(err, push.ErrEmptyInstance) {
			t.Errorf("%s with an empty instance id: %v, want ErrEmptyInstance", what, err)
		}
	}
}
