package scenario

import (
	"testing"
	"time"
)

func TestJSONStringFindsAFieldWithoutDecoding(t *testing.T) {
	doc := []byte(`{"seq":3,"type":"post.created","data":{"actor":{"id":"u1"},"post_id" : "p-42","text":"post_id"}}`)
	for _, c := range []struct{ field, want string }{
		{"post_id", "p-42"},
		{"type", "post.created"},
		{"seq", ""}, // not a string
		{"missing", ""},
	} {
		if got := jsonString(doc, c.field); got != c.want {
			t.Errorf("jsonString(%q) = %q, want %q", c.field, got, c.want)
		}
	}
	// A value equal to the field name is not taken for the field.
	if got := jsonString([]byte(`{"text":"post_id","post_id":"p1"}`), "post_id"); got != "p1" {
		t.Errorf("jsonString = %q, want p1", got)
	}
}

func TestTrackerMatchesEventsToActionsAndCountsWhatIsMissing(t *testing.T) {
	tr := newTracker(2)
	t0 := time.Now()
	everyone := newBitset(3, true)
	// An event that arrives before its action's answer is held until the action is accepted.
	tr.arrive("p1", 0, 0, t0.Add(2*time.Millisecond))
	tr.accept([]string{"p1"}, t0, t0.Add(time.Millisecond), everyone, 3, 3)
	tr.arrive("p1", 1, 1, t0.Add(3*time.Millisecond))
	tr.arrive("p1", 1, 1, t0.Add(4*time.Millisecond)) // duplicate
	only2 := newBitset(3, false)
	only2[0] |= 1 << 2
	tr.accept([]string{"m1", "id-1"}, t0, t0, only2, 3, 1)
	tr.arrive("id-1", 2, 0, t0.Add(time.Millisecond)) // found by its second key
	tr.arrive("m1", 0, 0, t0.Add(time.Millisecond))   // not a recipient
	tr.arrive("never", 0, 0, t0)                      // no such action

	expected, received, dups, extra, unmatched := tr.counts()
	if expected != 4 || received != 3 || dups != 1 || extra != 1 || unmatched != 1 {
		t.Fatalf("expected %d received %d dups %d extra %d unmatched %d, want 4 3 1 1 1", expected, received, dups, extra, unmatched)
	}
	if tr.perGateway[0].Load() != 2 || tr.perGateway[1].Load() != 1 {
		t.Errorf("per gateway %d/%d, want 2/1", tr.perGateway[0].Load(), tr.perGateway[1].Load())
	}
	if s := tr.fromAccepted.Summary(); s.Count != 3 || s.Max > 2.01 {
		t.Errorf("latency from accepted %+v, want 3 values, the largest 2 ms", s)
	}
}
