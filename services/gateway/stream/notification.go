package stream

import (
	"encoding/json"
	"errors"
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

// notificationFrame is the SSE frame of a notification: its sequence number as the event id.
// The JSON of a notification holds no line break, so it fits one data line.
func notificationFrame(n realtimev1.Notification) ([]byte, error) {
	n, _ = normalize(n)
	data, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(data)+48)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, n.Seq, 10)
	b = append(b, "\nevent: notification\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}
