package domain_test

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/deadletter/domain"
)

var (
	first = time.Date(2031, 3, 14, 15, 9, 26, 535897123, time.UTC)
	last  = first.Add(1500 * time.Millisecond)
)

// original is the metadata the message had when it was first published.
func original() map[string]string {
	return map[string]string{
		events.MetadataEventType: "post.created",
		events.PartitionKey:      "author-1",
		"traceparent":            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
}

// deadLetter is the original message as the event router dead-letters it.
func deadLetter() domain.Letter {
	md := original()
	md[events.MetadataPoisonReason] = "boom"
	md[events.MetadataPoisonTopic] = "posts"
	md[events.MetadataPoisonHandler] = "notify_followers"
	md[middleware.PoisonedSubscriberKey] = "sub-1"
	md[events.MetadataPoisonAttempts] = "5"
	md[events.MetadataPoisonFirstFailure] = first.Format(time.RFC3339Nano)
	md[events.MetadataPoisonLastFailure] = last.Format(time.RFC3339Nano)
	return domain.Letter{UUID: "0190a7c2-0000-7000-8000-000000000001", Metadata: md, Payload: []byte(`{"id":"x"}`)}
}

func TestNewEntryReadsTheFailureRecord(t *testing.T) {
	archived := last.Add(time.Second)
	e := domain.NewEntry("entry-1", deadLetter(), archived)
	if e.ID != "entry-1" || e.MessageID != deadLetter().UUID || e.Topic != "posts" || e.Handler != "notify_followers" ||
		e.Reason != "boom" || e.Attempts != 5 || string(e.Payload) != `{"id":"x"}` {
		t.Fatalf("entry %+v does not match the dead letter", e)
	}
	if !e.FirstFailedAt.Equal(first) || !e.LastFailedAt.Equal(last) || !e.ArchivedAt.Equal(archived) {
		t.Fatalf("times first %v last %v archived %v, want %v %v %v", e.FirstFailedAt, e.LastFailedAt, e.ArchivedAt, first, last, archived)
	}
	if !maps.Equal(e.Metadata, deadLetter().Metadata) {
		t.Fatalf("metadata %v, want all of the dead letter's", e.Metadata)
	}
	if e.Replayed() {
		t.Fatal("a new entry is not replayed")
	}
}

func TestNewEntryKeepsWhateverArrivesWithMalformedRecordFieldsLeftEmpty(t *testing.T) {
	l := deadLetter()
	l.Metadata[events.MetadataPoisonAttempts] = "many"
	l.Metadata[events.MetadataPoisonFirstFailure] = "yesterday"
	e := domain.NewEntry("entry-1", l, last)
	if e.Attempts != 0 || !e.FirstFailedAt.IsZero() || !e.LastFailedAt.Equal(last) {
		t.Fatalf("attempts %d first %v last %v; want 0, zero, %v", e.Attempts, e.FirstFailedAt, e.LastFailedAt, last)
	}
	bare := domain.NewEntry("entry-2", domain.Letter{UUID: "m"}, last)
	if bare.Metadata == nil || bare.Payload == nil || bare.Topic != "" || bare.DedupeKey == "" {
		t.Fatalf("bare entry %+v: want empty (not nil) metadata and payload, no topic, a dedupe key", bare)
	}
}

func TestNewEntryCopiesTheMetadata(t *testing.T) {
	l := deadLetter()
	e := domain.NewEntry("entry-1", l, last)
	l.Metadata[events.PartitionKey] = "changed"
	if e.Metadata[events.PartitionKey] != "author-1" {
		t.Fatal("the entry shares the letter's metadata map")
	}
}

func TestOriginalIsTheMessageWithoutTheFailureRecord(t *testing.T) {
	e := domain.NewEntry("entry-1", deadLetter(), last)
	topic, l, err := e.Original()
	if err != nil {
		t.Fatal(err)
	}
	if topic != "posts" || l.UUID != deadLetter().UUID || string(l.Payload) != `{"id":"x"}` {
		t.Fatalf("original %s %+v", topic, l)
	}
	if !maps.Equal(l.Metadata, original()) {
		t.Fatalf("original metadata %v, want %v", l.Metadata, original())
	}
	if _, ok := e.Metadata[events.MetadataPoisonReason]; !ok {
		t.Fatal("Original changed the entry's own metadata")
	}
}

func TestOriginalNeedsTheOriginalTopic(t *testing.T) {
	e := domain.NewEntry("entry-1", domain.Letter{UUID: "m", Payload: []byte("x")}, last)
	if _, _, err := e.Original(); !errors.Is(err, domain.ErrNoOriginalTopic) {
		t.Fatalf("Original of a letter without topic: %v, want ErrNoOriginalTopic", err)
	}
}

func TestDedupeKeyIsStableAcrossRedeliveryAndNewForALaterFailure(t *testing.T) {
	a, b := deadLetter(), deadLetter()
	if domain.DedupeKey(a) != domain.DedupeKey(b) {
		t.Fatal("two deliveries of one dead letter have different keys")
	}
	b.Metadata[events.MetadataPoisonLastFailure] = last.Add(time.Hour).Format(time.RFC3339Nano)
	if domain.DedupeKey(a) == domain.DedupeKey(b) {
		t.Fatal("a later failure of the same message has the same key")
	}
	c := deadLetter()
	c.UUID = "0190a7c2-0000-7000-8000-000000000002"
	if domain.DedupeKey(a) == domain.DedupeKey(c) {
		t.Fatal("two messages failing at the same time have the same key")
	}
}

func TestDedupeKeyWithoutFailureTimeHashesTheContent(t *testing.T) {
	l := func(payload string, md map[string]string) domain.Letter {
		return domain.Letter{UUID: "m", Metadata: md, Payload: []byte(payload)}
	}
	same1 := domain.DedupeKey(l("p", map[string]string{"a": "1", "b": "2"}))
	same2 := domain.DedupeKey(l("p", map[string]string{"b": "2", "a": "1"}))
	if same1 != same2 {
		t.Fatal("equal content, different keys")
	}
	for _, other := range []domain.Letter{
		l("q", map[string]string{"a": "1", "b": "2"}),
		l("p", map[string]string{"a": "1", "b": "3"}),
		{UUID: "n", Metadata: map[string]string{"a": "1", "b": "2"}, Payload: []byte("p")},
	} {
		if domain.DedupeKey(other) == same1 {
			t.Errorf("different content %+v has the same key", other)
		}
	}
}
