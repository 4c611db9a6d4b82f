package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/piazza-social/piazza/api/realtimev1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
)

// emptyData is the data of a notification that has none: clients always get an object.
var emptyData = json.RawMessage(`{}`)

// NotificationFromProto is notification-service's notification as clients see it, over the
// stream and from GET /v1/notifications alike: created_at in UTC, data a JSON object ({} when
// empty). Data that is not valid JSON is replaced by {} and reported in the error, with the
// notification still usable.
func NotificationFromProto(p *notificationv1.Notification) (realtimev1.Notification, error) {
	n := realtimev1.Notification{
		Seq:       p.GetSeq(),
		ID:        p.GetId(),
		Type:      p.GetType(),
		CreatedAt: p.GetCreatedAt().AsTime().UTC(),
		Read:      p.GetRead(),
		Data:      p.GetData(),
	}
	return normalize(n)
}

func normalize(n realtimev1.Notification) (realtimev1.Notification, error) {
	n.CreatedAt = n.CreatedAt.UTC()
	switch {
	case len(n.Data) == 0:
		n.Data = emptyData
	case !json.Valid(n.Data):
		n.Data = emptyData
		return n, errors.New("notification data is not valid JSON")
	}
	return n, nil
}

// seqField is how the JSON of a notification starts: its sequence number is the first field.
const seqField = `{"seq":`

// notificationRest encodes the SSE frame of n but for its sequence number, which appears
// twice in it (the event id, the first field of the data): appendNotification makes the frame
// of any sequence number from it. The recipients of one event get the same notification but
// for its sequence number, so a batch encodes it once for all of them. The JSON of a
// notification holds no line break, so it fits one data line.
func notificationRest(n realtimev1.Notification) ([]byte, error) {
	n, _ = normalize(n)
	n.Seq = 0
	data, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(data, []byte(seqField+"0"))
	if !ok {
		return nil, fmt.Errorf("stream: the JSON of a notification does not start with its seq: %.40s", data)
	}
	return append(rest, "\n\n"...), nil
}

// appendNotification appends the SSE frame of notification seq, the rest of which is rest
// (from notificationRest), to b: its sequence number as the event id.
func appendNotification(b []byte, seq int64, rest []byte) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "\nevent: notification\ndata: "+seqField...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, rest...)
}

// sameButSeq reports whether a and b are the same notification but for their sequence
// numbers: their frames differ only there.
func sameButSeq(a, b *realtimev1.Notification) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Read == b.Read && a.CreatedAt.Equal(b.CreatedAt) && bytes.Equal(a.Data, b.Data)
}
