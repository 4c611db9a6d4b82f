package scenario

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/bench/loadgen"
)

// tracker matches the events that arrive on the streams with the actions that caused them (a
// post, a message), each known by a key found in the event's data, and measures the latency
// from the action to every expected recipient's event. An event may arrive before the
// client has read the answer to its action; it is held until the action is accepted.
type tracker struct {
	mu       sync.Mutex
	items    map[string]*item
	early    map[string][]arrival
	expected int64
	received int64
	dups     int64
	extra    int64 // events of a known action at a recipient that was not expected
	first    time.Time
	last     time.Time

	fromAccepted  *loadgen.Histogram
	fromScheduled *loadgen.Histogram
	perGateway    []atomic.Int64
}

// item is one tracked action.
type item struct {
	scheduled, accepted time.Time
	expect              []uint64 // bitset of the recipients expected (may be shared)
	seen                []uint64 // bitset of the recipients seen
}

type arrival struct {
	who, gw int
	at      time.Time
}

func newTracker(gateways int) *tracker {
	return &tracker{
		items:         map[string]*item{},
		early:         map[string][]arrival{},
		fromAccepted:  loadgen.NewHistogram(),
		fromScheduled: loadgen.NewHistogram(),
		perGateway:    make([]atomic.Int64, gateways),
	}
}

// newBitset returns a bitset of n bits, all set when full.
func newBitset(n int, full bool) []uint64 {
	b := make([]uint64, (n+63)/64)
	if full {
		for i := range n {
			b[i/64] |= 1 << (i % 64)
		}
	}
	return b
}

func bitSet(b []uint64, i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

// accept records an accepted action under its keys, expecting an event at each recipient in
// expect (a bitset over the universe of universe recipients; shared, not modified).
func (t *tracker) accept(keys []string, scheduled, accepted time.Time, expect []uint64, universe int, count int) {
	it := &item{scheduled: scheduled, accepted: accepted, expect: expect, seen: newBitset(universe, false)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.IsZero() || accepted.Before(t.first) {
		t.first = accepted
	}
	t.expected += int64(count)
	for _, k := range keys {
		t.items[k] = it
	}
	for _, k := range keys {
		for _, a := range t.early[k] {
			t.record(it, a)
		}
		delete(t.early, k)
	}
}

// arrive records an event for key at recipient who, seen through gateway gw.
func (t *tracker) arrive(key string, who, gw int, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := arrival{who: who, gw: gw, at: at}
	if it, ok := t.items[key]; ok {
		t.record(it, a)
		return
	}
	t.early[key] = append(t.early[key], a)
}

func (t *tracker) record(it *item, a arrival) {
	switch {
	case !bitSet(it.expect, a.who):
		t.extra++
		return
	case bitSet(it.seen, a.who):
		t.dups++
		return
	}
	it.seen[a.who/64] |= 1 << (a.who % 64)
	t.received++
	t.perGateway[a.gw].Add(1)
	if a.at.After(t.last) {
		t.last = a.at
	}
	t.fromAccepted.Record(a.at.Sub(it.accepted))
	t.fromScheduled.Record(a.at.Sub(it.scheduled))
}

// counts returns expected, received (distinct expected events), duplicates, extra, and the
// events of keys never accepted (a failed or dropped action whose event still came).
func (t *tracker) counts() (expected, received, dups, extra, unmatched int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, as := range t.early {
		unmatched += int64(len(as))
	}
	return t.expected, t.received, t.dups, t.extra, unmatched
}

// window is the time from the first accepted action to the last expected event.
func (t *tracker) window() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.IsZero() || t.last.Before(t.first) {
		return 0
	}
	return t.last.Sub(t.first)
}

// How a drain ended.
const (
	drainComplete = "complete" // every expected event arrived
	drainQuiet    = "quiet"    // none arrived for the quiet period: the missing ones are lost
	drainCapped   = "capped"   // events were still arriving when the cap was reached: a backlog
)

// drain waits until every expected event has arrived, or none arrived for quiet, or limit
// passed, or ctx ends, and says which.
func (t *tracker) drain(ctx context.Context, quiet, limit time.Duration) string {
	lastCount, lastChange, deadline := int64(-1), time.Now(), time.Now().Add(limit)
	for {
		expected, received, _, _, _ := t.counts()
		switch {
		case received >= expected:
			return drainComplete
		case received != lastCount:
			lastCount, lastChange = received, time.Now()
		case time.Since(lastChange) >= quiet:
			return drainQuiet
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return drainCapped
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// jsonString returns the string value of the first "field":"..." in a JSON document, without
// decoding it: the load tool reads tens of thousands of events a second on the machine it
// measures, and a full decode of each would cost the server CPU time.
func jsonString(doc []byte, field string) string {
	pat := make([]byte, 0, len(field)+3)
	pat = append(pat, '"')
	pat = append(pat, field...)
	pat = append(pat, '"')
	for i := 0; i < len(doc); {
		j := bytes.Index(doc[i:], pat)
		if j < 0 {
			return ""
		}
		rest := bytes.TrimLeft(doc[i+j+len(pat):], " ")
		if len(rest) > 0 && rest[0] == ':' {
			rest = bytes.TrimLeft(rest[1:], " ")
			if len(rest) > 0 && rest[0] == '"' {
				if end := bytes.IndexByte(rest[1:], '"'); end >= 0 {
					return string(rest[1 : 1+end])
				}
			}
			return ""
		}
		i += j + len(pat)
	}
	return ""
}
