// Package realtimev1 is the contract of real-time delivery: the notification as every client
// sees it (over SSE and from GET /v1/notifications), and the batch that notification-service
// publishes on a gateway instance's Redis channel `gateway_events:<instance_id>` so that the
// gateway can write it to the right connections.
package realtimev1

import (
	"encoding/json"
	"time"
)

// ChannelPrefix is the prefix of a gateway instance's push channel: gateway_events:<instance_id>.
const ChannelPrefix = "gateway_events:"

// Channel returns the push channel of a gateway instance.
func Channel(instanceID string) string { return ChannelPrefix + instanceID }

// Notification is one entry of a user's inbox. Seq is the per-user sequence number and the
// SSE event id; Data is a JSON object whose shape depends on Type.
type Notification struct {
	Seq       int64           `json:"seq"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Read      bool            `json:"read"`
	Data      json.RawMessage `json:"data"`
}

// Delivery is one notification for one user.
type Delivery struct {
	UserID       string       `json:"user_id"`
	Notification Notification `json:"notification"`
}

// Batch is what one message on a gateway's push channel carries: the deliveries of one event
// to the users connected to that gateway. TraceParent and TraceState carry the W3C trace
// context of the notification handler, so the gateway's write spans join its trace.
type Batch struct {
	Deliveries  []Delivery `json:"deliveries"`
	TraceParent string     `json:"traceparent,omitempty"`
	TraceState  string     `json:"tracestate,omitempty"`
	// OccurredAt is when the originating event happened, for end-to-end latency metrics.
	OccurredAt time.Time `json:"occurred_at"`
}
