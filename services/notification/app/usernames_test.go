package app_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/piazza-social/piazza/services/notification/app"
)

// directory is a Users that knows names and records the ids of each call.
type directory struct {
	mu    sync.Mutex
	names map[string]string
	asked [][]string
	fail  error
}

func (d *directory) Usernames(_ context.Context, ids []string) (map[string]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, slices.Clone(ids))
	if d.fail != nil {
		return nil, d.fail
	}
	out := map[string]string{}
	for _, id := range ids {
		if n, ok := d.names[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

func (d *directory) calls() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.asked)
}

func newUsernameCache(t *testing.T, size int, d *directory) (*app.UsernameCache, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	c, err := app.NewUsernameCache(app.UsernameCacheConfig{
		Size:          size,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, reader
}

func lookUp(t *testing.T, c *app.UsernameCache, ids ...string) map[string]string {
	t.Helper()
	got, err := c.Usernames(t.Context(), ids)
	if err != nil {
		t.Fatalf("Usernames(%q): %v", ids, err)
	}
	return got
}

func TestAUsernameOnceAnsweredIsNotAskedAgain(t *testing.T) {
	d := &directory{names: map[string]string{"u1": "ann"}}
	c, reader := newUsernameCache(t, 10, d)
	for range 3 {
		if got := lookUp(t, c, "u1"); !maps.Equal(got, map[string]string{"u1": "ann"}) {
			t.Fatalf("answer %v, want u1: ann", got)
		}
	}
	if calls := d.calls(); len(calls) != 1 {
		t.Fatalf("user-service asked %v, want once", calls)
	}
	hits := counterSum(t, reader, "notification.usernames.lookups", attribute.String("result", "hit"))
	misses := counterSum(t, reader, "notification.usernames.lookups", attribute.String("result", "miss"))
	if hits != 2 || misses != 1 {
		t.Errorf("lookups counted %d hits, %d misses; want 2, 1", hits, misses)
	}
}

func TestOnlyTheUnknownIDsAreAskedInOneCall(t *testing.T) {
	d := &directory{names: map[string]string{"u1": "ann", "u2": "bob", "u3": "cid"}}
	c, _ := newUsernameCache(t, 10, d)
	lookUp(t, c, "u1")
	got := lookUp(t, c, "u2", "u1", "u3", "u2")
	if want := map[string]string{"u1": "ann", "u2": "bob", "u3": "cid"}; !maps.Equal(got, want) {
		t.Fatalf("answer %v, want %v", got, want)
	}
	calls := d.calls()
	if len(calls) != 2 || !slices.Equal(calls[1], []string{"u2", "u3"}) {
		t.Fatalf("user-service asked %q, want [u1] then [u2 u3]", calls)
	}
}

func TestAnUnknownIDIsAskedAgainUntilItExists(t *testing.T) {
	d := &directory{names: map[string]string{"u1": "ann"}}
	c, _ := newUsernameCache(t, 10, d)
	if got := lookUp(t, c, "u1", "new"); !maps.Equal(got, map[string]string{"u1": "ann"}) {
		t.Fatalf("answer %v, want only u1: ann (new is unknown)", got)
	}
	d.mu.Lock()
	d.names["new"] = "nia" // the account was created after the first lookup
	d.mu.Unlock()
	if got := lookUp(t, c, "u1", "new"); !maps.Equal(got, map[string]string{"u1": "ann", "new": "nia"}) {
		t.Fatalf("answer %v, want u1: ann, new: nia", got)
	}
	calls := d.calls()
	if len(calls) != 2 || !slices.Equal(calls[1], []string{"new"}) {
		t.Fatalf("user-service asked %q, want [u1 new] then [new]", calls)
	}
}

func TestAFailedLookupAnswersNothingAndRemembersNothing(t *testing.T) {
	d := &directory{names: map[string]string{"u1": "ann"}, fail: errors.New("user-service unavailable")}
	c, _ := newUsernameCache(t, 10, d)
	if got, err := c.Usernames(t.Context(), []string{"u1"}); err == nil {
		t.Fatalf("answer %v, want the wrapped error", got)
	}
	d.mu.Lock()
	d.fail = nil
	d.mu.Unlock()
	lookUp(t, c, "u1")
	if calls := d.calls(); len(calls) != 2 {
		t.Fatalf("user-service asked %q, want twice (the failure remembered nothing)", calls)
	}
}

func TestTheCacheRemembersAtMostSizeUsernamesDroppingTheLeastRecentlyUsed(t *testing.T) {
	d := &directory{names: map[string]string{}}
	for i := range 4 {
		d.names[fmt.Sprintf("u%d", i)] = fmt.Sprintf("name%d", i)
	}
	c, _ := newUsernameCache(t, 3, d)
	lookUp(t, c, "u0", "u1", "u2")
	lookUp(t, c, "u0") // u1 is now the least recently used
	lookUp(t, c, "u3") // and goes
	before := len(d.calls())
	lookUp(t, c, "u0", "u2", "u3")
	if calls := d.calls(); len(calls) != before {
		t.Fatalf("user-service asked %q for remembered ids", calls[before:])
	}
	lookUp(t, c, "u1")
	if calls := d.calls(); len(calls) != before+1 || !slices.Equal(calls[before], []string{"u1"}) {
		t.Fatalf("user-service asked %q, want [u1] (dropped to keep the bound)", calls[before:])
	}
}

func TestUsernameCacheRejectsANegativeSizeAndAMissingUsers(t *testing.T) {
	if _, err := app.NewUsernameCache(app.UsernameCacheConfig{Size: -1}, &directory{}, nil); err == nil {
		t.Error("Size -1 accepted")
	}
	if _, err := app.NewUsernameCache(app.UsernameCacheConfig{}, nil, nil); err == nil {
		t.Error("nil Users accepted")
	}
}
