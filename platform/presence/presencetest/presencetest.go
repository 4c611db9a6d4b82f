// Package presencetest holds the contract suite every presence.Store adapter passes.
//
// Run drives a store on the real clock: connections meant to expire get a TTL of one second and
// the suite polls, with a deadline, until they are gone. RunWithClock drives a store whose
// clock the suite controls, so expiry is instant. Stores that implement presence.Liveness are
// checked for it too.
package presencetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/presence"
)

const (
	// realShort is the TTL of connections meant to expire, on the real clock. Redis keeps
	// milliseconds, so a second leaves room for scheduling noise in the steps before expiry.
	realShort = time.Second
	// long is the TTL of connections meant to outlive the test.
	long = time.Hour
	// patience bounds every wait for expiry: far above the TTLs, so only a broken store hits it.
	patience = 30 * time.Second
)

// Run runs the contract on the real clock. newStore(t) returns a store holding no entry for
// the users the tests make up (a fresh store, or one with a key prefix of its own).
func Run(t *testing.T, newStore func(t *testing.T) presence.Store) {
	t.Helper()
	run(t, func(t *testing.T) *harness {
		return &harness{s: newStore(t), short: realShort, pass: func() { time.Sleep(10 * time.Millisecond) }}
	})
}

// RunWithClock runs the contract on a fake clock: newStore(t, now) returns a fresh store that
// reads the time from now. The clock only moves when the suite moves it.
func RunWithClock(t *testing.T, newStore func(t *testing.T, now func() time.Time) presence.Store) {
	t.Helper()
	run(t, func(t *testing.T) *harness {
		clk := &clock{now: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
		short := time.Minute
		return &harness{s: newStore(t, clk.Now), short: short, pass: func() { clk.advance(short / 8) }}
	})
}

func run(t *testing.T, newHarness func(t *testing.T) *harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"RegisteredConnectionIsOnlineAndRouted", testRegister},
		{"UnknownUsersAreOfflineAndAbsent", testUnknown},
		{"ConnectionsOnTwoInstancesRouteToBothAndTransitionOnce", testTwoInstances},
		{"ConnectionsOnOneInstanceRouteToItOnce", testOneInstance},
		{"RegisteringALiveConnectionAgainIsNoTransition", testReRegister},
		{"ConcurrentConnectionsReportFirstAndLastExactlyOnce", testConcurrent},
		{"ExpiredConnectionDisappearsWithoutUnregister", testExpiry},
		{"ExpiredConnectionLeavesTheUsersOtherConnections", testPartialExpiry},
		{"RefreshKeepsAConnectionAlivePastItsFirstTTL", testRefresh},
		{"RefreshRegistersAnExpiredConnectionAgain", testRefreshExpired},
		{"RoutesAnswersForManyUsersInOneCall", testManyUsers},
		{"LiveTellsEachConnection", testLive},
		{"InvalidConnectionsAndTTLsAreRejected", testInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.t = t
			h.ctx = ctxFor(t)
			h.run = uuid.NewString()[:8]
			tc.fn(t, h)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	s     presence.Store
	run   string        // makes the ids of one test unique
	short time.Duration // the TTL of connections meant to expire during a test
	pass  func()        // lets some time pass: sleeps, or moves the fake clock
}

func (h *harness) user(name string) string { return "user-" + name + "-" + h.run }

func (h *harness) conn(user, name, instance string) presence.Connection {
	return presence.Connection{UserID: user, ConnectionID: "conn-" + name + "-" + h.run, InstanceID: instance}
}

func (h *harness) register(c presence.Connection, ttl time.Duration) bool {
	h.t.Helper()
	first, err := h.s.Register(h.ctx, c, ttl)
	if err != nil {
		h.t.Fatalf("Register(%+v, %s): %v", c, ttl, err)
	}
	return first
}

func (h *harness) unregister(c presence.Connection) bool {
	h.t.Helper()
	last, err := h.s.Unregister(h.ctx, c)
	if err != nil {
		h.t.Fatalf("Unregister(%+v): %v", c, err)
	}
	return last
}

func (h *harness) refresh(c presence.Connection, ttl time.Duration) {
	h.t.Helper()
	if err := h.s.Refresh(h.ctx, c, ttl); err != nil {
		h.t.Fatalf("Refresh(%+v, %s): %v", c, ttl, err)
	}
}

func (h *harness) online(user string) bool {
	h.t.Helper()
	on, err := h.s.Online(h.ctx, user)
	if err != nil {
		h.t.Fatalf("Online(%s): %v", user, err)
	}
	return on
}

func (h *harness) routes(users ...string) map[string][]string {
	h.t.Helper()
	r, err := h.s.Routes(h.ctx, users)
	if err != nil {
		h.t.Fatalf("Routes(%v): %v", users, err)
	}
	if r == nil {
		h.t.Fatalf("Routes(%v) returned a nil map", users)
	}
	return r
}

// expectRoutes checks that the user is online and routed to exactly instances.
func (h *harness) expectRoutes(user string, instances ...string) {
	h.t.Helper()
	if !h.online(user) {
		h.t.Errorf("Online(%s) = false, want true", user)
	}
	got := h.routes(user)
	want := map[string][]string{user: instances}
	if !maps.EqualFunc(got, want, slices.Equal) {
		h.t.Errorf("Routes(%s) = %v, want %v", user, got, want)
	}
}

// expectOffline checks that the user is offline and absent from Routes.
func (h *harness) expectOffline(user string) {
	h.t.Helper()
	if h.online(user) {
		h.t.Errorf("Online(%s) = true, want false", user)
	}
	if got := h.routes(user); len(got) != 0 {
		h.t.Errorf("Routes(%s) = %v, want no entry", user, got)
	}
}

// await lets time pass until cond holds, failing the test after patience (on the real clock)
// or as many fake-clock steps.
func (h *harness) await(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(patience)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) || i > 10_000 {
			h.t.Fatalf("still waiting for %s", what)
		}
		h.pass()
	}
}

func (h *harness) liveness() presence.Liveness {
	h.t.Helper()
	l, ok := h.s.(presence.Liveness)
	if !ok {
		h.t.Skipf("%T does not implement presence.Liveness", h.s)
	}
	return l
}

func (h *harness) live(conns ...presence.Connection) []bool {
	h.t.Helper()
	got, err := h.liveness().Live(h.ctx, conns)
	if err != nil {
		h.t.Fatalf("Live: %v", err)
	}
	if len(got) != len(conns) {
		h.t.Fatalf("Live returned %d answers for %d connections", len(got), len(conns))
	}
	return got
}

func testRegister(t *testing.T, h *harness) {
	alice := h.user("alice")
	c := h.conn(alice, "1", "gw-a")
	if !h.register(c, long) {
		t.Error("first connection of an offline user: first = false, want true")
	}
	h.expectRoutes(alice, "gw-a")
}

func testUnknown(t *testing.T, h *harness) {
	ghost := h.user("ghost")
	h.expectOffline(ghost)
	if got := h.routes(); len(got) != 0 {
		t.Errorf("Routes() = %v, want empty", got)
	}
	if h.unregister(h.conn(ghost, "1", "gw-a")) {
		t.Error("Unregister of an unknown connection reported last = true")
	}
	if _, ok := h.s.(presence.Liveness); ok {
		if got := h.live(h.conn(ghost, "1", "gw-a")); got[0] {
			t.Error("Live of an unknown connection = true")
		}
	}
}

func testTwoInstances(t *testing.T, h *harness) {
	bob := h.user("bob")
	laptop, phone := h.conn(bob, "laptop", "gw-a"), h.conn(bob, "phone", "gw-b")
	if !h.register(laptop, long) {
		t.Error("first connection: first = false, want true")
	}
	if h.register(phone, long) {
		t.Error("second connection: first = true, want false")
	}
	h.expectRoutes(bob, "gw-a", "gw-b")

	if h.unregister(laptop) {
		t.Error("unregistering one of two connections: last = true, want false")
	}
	h.expectRoutes(bob, "gw-b")
	if !h.unregister(phone) {
		t.Error("unregistering the last connection: last = false, want true")
	}
	h.expectOffline(bob)
	if h.unregister(phone) {
		t.Error("unregistering the last connection twice: last = true the second time")
	}
	if !h.register(laptop, long) {
		t.Error("connecting again after going offline: first = false, want true")
	}
}

func testOneInstance(t *testing.T, h *harness) {
	carol := h.user("carol")
	for i := range 3 {
		h.register(h.conn(carol, strconv.Itoa(i), "gw-a"), long)
	}
	h.expectRoutes(carol, "gw-a")
}

func testReRegister(t *testing.T, h *harness) {
	dave := h.user("dave")
	c := h.conn(dave, "1", "gw-a")
	h.register(c, long)
	if h.register(c, long) {
		t.Error("registering a live connection again: first = true, want false")
	}
	if !h.unregister(c) {
		t.Error("the connection registered twice is one connection: last = false after unregistering it once")
	}
}

func testConcurrent(t *testing.T, h *harness) {
	erin := h.user("erin")
	const n = 16
	conns := make([]presence.Connection, n)
	for i := range conns {
		conns[i] = h.conn(erin, strconv.Itoa(i), "gw-"+strconv.Itoa(i%3))
	}
	// concurrently calls fn for every connection at once and counts the true answers.
	concurrently := func(fn func(c presence.Connection) (bool, error)) int32 {
		var (
			wg    sync.WaitGroup
			hits  atomic.Int32
			errs  = make([]error, n)
			start = make(chan struct{})
		)
		for i, c := range conns {
			wg.Go(func() {
				<-start
				hit, err := fn(c)
				if hit {
					hits.Add(1)
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		return hits.Load()
	}
	firsts := concurrently(func(c presence.Connection) (bool, error) { return h.s.Register(h.ctx, c, long) })
	if firsts != 1 {
		t.Errorf("%d of %d concurrent registrations reported first, want exactly 1", firsts, n)
	}
	h.expectRoutes(erin, "gw-0", "gw-1", "gw-2")
	lasts := concurrently(func(c presence.Connection) (bool, error) { return h.s.Unregister(h.ctx, c) })
	if lasts != 1 {
		t.Errorf("%d of %d concurrent unregistrations reported last, want exactly 1", lasts, n)
	}
	h.expectOffline(erin)
}

func testExpiry(t *testing.T, h *harness) {
	frank, grace := h.user("frank"), h.user("grace")
	crashed := h.conn(frank, "1", "gw-crashed")
	h.register(crashed, h.short)
	h.register(h.conn(grace, "1", "gw-ok"), long)
	h.await("the unrenewed connection to expire", func() bool { return !h.online(frank) })
	h.expectOffline(frank)
	h.expectRoutes(grace, "gw-ok")
	if h.unregister(crashed) {
		t.Error("unregistering an expired connection: last = true, want false (the user went offline at expiry)")
	}
	if !h.register(crashed, long) {
		t.Error("registering after expiry: first = false, want true")
	}
}

func testPartialExpiry(t *testing.T, h *harness) {
	heidi := h.user("heidi")
	h.register(h.conn(heidi, "old", "gw-crashed"), h.short)
	stays := h.conn(heidi, "new", "gw-ok")
	h.register(stays, long)
	h.await("the unrenewed connection to leave the routes", func() bool {
		return slices.Equal(h.routes(heidi)[heidi], []string{"gw-ok"})
	})
	h.expectRoutes(heidi, "gw-ok")
	if !h.unregister(stays) {
		t.Error("unregistering the only live connection: last = false, want true")
	}
}

func testRefresh(t *testing.T, h *harness) {
	ivan, judy := h.user("ivan"), h.user("judy")
	renewed := h.conn(ivan, "1", "gw-a")
	h.register(renewed, h.short)
	// judy's connection is registered after ivan's with the same TTL: once it has expired,
	// ivan's first TTL has run out too.
	h.register(h.conn(judy, "1", "gw-a"), h.short)
	h.refresh(renewed, long)
	h.await("the control connection to expire", func() bool { return !h.online(judy) })
	h.expectRoutes(ivan, "gw-a")
	if !h.unregister(renewed) {
		t.Error("unregistering the refreshed connection: last = false, want true")
	}
}

func testRefreshExpired(t *testing.T, h *harness) {
	mallory := h.user("mallory")
	c := h.conn(mallory, "1", "gw-a")
	h.register(c, h.short)
	h.await("the connection to expire", func() bool { return !h.online(mallory) })
	h.refresh(c, long)
	h.expectRoutes(mallory, "gw-a")
	h.refresh(h.conn(mallory, "never-registered", "gw-b"), long)
	h.expectRoutes(mallory, "gw-a", "gw-b")
}

func testManyUsers(t *testing.T, h *harness) {
	const n = 300
	users := make([]string, n)
	want := map[string][]string{}
	for i := range users {
		users[i] = h.user("many-" + strconv.Itoa(i))
		switch i % 3 {
		case 0: // offline
		case 1:
			h.register(h.conn(users[i], "a", "gw-"+strconv.Itoa(i%5)), long)
			want[users[i]] = []string{"gw-" + strconv.Itoa(i%5)}
		case 2:
			h.register(h.conn(users[i], "a", "gw-x"), long)
			h.register(h.conn(users[i], "b", "gw-y"), long)
			want[users[i]] = []string{"gw-x", "gw-y"}
		}
	}
	// Unknown ids and duplicates change nothing.
	query := append(slices.Clone(users), h.user("unknown"), users[1], users[2])
	got := h.routes(query...)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Routes of %d users: %s", len(query), diff(got, want))
	}
}

func diff(got, want map[string][]string) string {
	for u, w := range want {
		if g, ok := got[u]; !ok || !slices.Equal(g, w) {
			return fmt.Sprintf("%s: got %v, want %v (%d entries, want %d)", u, g, w, len(got), len(want))
		}
	}
	for u, g := range got {
		if _, ok := want[u]; !ok {
			return fmt.Sprintf("%s: got %v, want no entry", u, g)
		}
	}
	return "equal"
}

func testLive(t *testing.T, h *harness) {
	h.liveness()
	olivia, peggy := h.user("olivia"), h.user("peggy")
	live := h.conn(olivia, "live", "gw-a")
	gone := h.conn(olivia, "gone", "gw-a")
	expired := h.conn(peggy, "expired", "gw-b")
	h.register(live, long)
	h.register(gone, long)
	h.unregister(gone)
	h.register(expired, h.short)
	h.await("the unrenewed connection to expire", func() bool { return !h.online(peggy) })

	otherInstance := live
	otherInstance.InstanceID = "gw-b"
	otherUser := live
	otherUser.UserID = peggy
	conns := []presence.Connection{live, gone, expired, otherInstance, otherUser, h.conn(olivia, "unknown", "gw-a"), live}
	want := []bool{true, false, false, false, false, false, true}
	if got := h.live(conns...); !slices.Equal(got, want) {
		t.Errorf("Live = %v, want %v (live, unregistered, expired, wrong instance, wrong user, unknown, live)", got, want)
	}
	if got := h.live(); len(got) != 0 {
		t.Errorf("Live() = %v, want empty", got)
	}
}

func testInvalid(t *testing.T, h *harness) {
	good := h.conn(h.user("trent"), "1", "gw-a")
	bad := []presence.Connection{
		{ConnectionID: "c", InstanceID: "i"},
		{UserID: "u", InstanceID: "i"},
		{UserID: "u", ConnectionID: "c"},
		{UserID: "u", ConnectionID: "c", InstanceID: "gw|a"},
	}
	for _, c := range bad {
		if _, err := h.s.Register(h.ctx, c, long); !errors.Is(err, presence.ErrInvalidConnection) {
			t.Errorf("Register(%+v) error = %v, want ErrInvalidConnection", c, err)
		}
		if err := h.s.Refresh(h.ctx, c, long); !errors.Is(err, presence.ErrInvalidConnection) {
			t.Errorf("Refresh(%+v) error = %v, want ErrInvalidConnection", c, err)
		}
		if _, err := h.s.Unregister(h.ctx, c); !errors.Is(err, presence.ErrInvalidConnection) {
			t.Errorf("Unregister(%+v) error = %v, want ErrInvalidConnection", c, err)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Second, time.Microsecond} {
		if _, err := h.s.Register(h.ctx, good, ttl); err == nil {
			t.Errorf("Register with ttl %s succeeded", ttl)
		}
		if err := h.s.Refresh(h.ctx, good, ttl); err == nil {
			t.Errorf("Refresh with ttl %s succeeded", ttl)
		}
	}
	h.expectOffline(good.UserID)
}
