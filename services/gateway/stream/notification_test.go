package stream

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/realtimev1"
)

// TestAFrameBuiltFromTheSharedEncodingIsTheNotificationsOwn pins the wire format of a
// notification whose encoding is shared by the recipients of its event: exactly the frame of
// the notification encoded on its own, whatever its sequence number.
func TestAFrameBuiltFromTheSharedEncodingIsTheNotificationsOwn(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, n := range []realtimev1.Notification{
		{ID: "ev1", Type: "post.created", CreatedAt: at, Data: json.RawMessage(`{"post_id":"p1", "author_id":"u1"}`)},
		{ID: "ev2", Type: "post.liked", CreatedAt: at, Read: true},
		{ID: "ev3", Type: "x", Data: json.RawMessage(`not json`)},
	} {
		rest, err := notificationRest(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []int64{0, 1, 42, -7, 1 << 62} {
			n.Seq = seq
			own, _ := normalize(n)
			data, err := json.Marshal(own)
			if err != nil {
				t.Fatal(err)
			}
			want := "id: " + strconv.FormatInt(seq, 10) + "\nevent: notification\ndata: " + string(data) + "\n\n"
			if got := string(appendNotification(nil, seq, rest)); got != want {
				t.Errorf("seq %d:\n got %q\nwant %q", seq, got, want)
			}
		}
	}
}

func TestNotificationsDifferingOnlyInSeqAreTheSameButSeq(t *testing.T) {
	at := time.Now()
	a := realtimev1.Notification{Seq: 1, ID: "ev", Type: "post.created", CreatedAt: at, Data: json.RawMessage(`{"a":1}`)}
	b := a
	b.Seq, b.CreatedAt = 2, at.UTC()
	if !sameButSeq(&a, &b) {
		t.Error("the same notification but for its seq (and its time's zone): not the same")
	}
	for name, edit := range map[string]func(*realtimev1.Notification){
		"id":   func(n *realtimev1.Notification) { n.ID = "other" },
		"type": func(n *realtimev1.Notification) { n.Type = "other" },
		"time": func(n *realtimev1.Notification) { n.CreatedAt = at.Add(time.Nanosecond) },
		"read": func(n *realtimev1.Notification) { n.Read = true },
		"data": func(n *realtimev1.Notification) { n.Data = json.RawMessage(`{"a":2}`) },
	} {
		c := a
		edit(&c)
		if sameButSeq(&a, &c) {
			t.Errorf("another %s: the same", name)
		}
	}
}
