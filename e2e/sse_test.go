package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseEvent is one Server-Sent Events frame.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// notificationFrame is the data of an `event: notification` frame.
type notificationFrame struct {
	Seq  int64           `json:"seq"`
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// stream is an open SSE connection.
type stream struct {
	t      *testing.T
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

// openStream opens GET /v1/events with a bearer token and, when lastEventID is not empty, a
// Last-Event-ID header. It fails the test unless the response is 200 text/event-stream.
func (c *client) openStream(token, lastEventID string) *stream {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		c.t.Fatalf("open stream: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: c.t, events: make(chan sseEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Event != "" || len(data) > 0 {
					ev.Data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				// comment (heartbeat)
			default:
				field, value, _ := strings.Cut(line, ":")
				value = strings.TrimPrefix(value, " ")
				switch field {
				case "id":
					ev.ID = value
				case "event":
					ev.Event = value
				case "data":
					data = append(data, value)
				}
			}
		}
	}()
	c.t.Cleanup(s.close)
	return s
}

// close ends the connection from the client side.
func (s *stream) close() {
	s.cancel()
	<-s.done
}

// next returns the next frame of the given event type, skipping others, within timeout.
func (s *stream) next(event string, timeout time.Duration) (sseEvent, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return sseEvent{}, false
			}
			if ev.Event == event {
				return ev, true
			}
		case <-deadline:
			return sseEvent{}, false
		}
	}
}

// notification returns the next notification frame, failing the test after timeout.
func (s *stream) notification(what string, timeout time.Duration) notificationFrame {
	s.t.Helper()
	ev, ok := s.next("notification", timeout)
	if !ok {
		s.t.Fatalf("%s: no notification within %v", what, timeout)
	}
	var n notificationFrame
	if err := json.Unmarshal([]byte(ev.Data), &n); err != nil {
		s.t.Fatalf("%s: notification data is not JSON: %v: %s", what, err, ev.Data)
	}
	if ev.ID != strconv.FormatInt(n.Seq, 10) {
		s.t.Fatalf("%s: SSE id %q differs from seq %d", what, ev.ID, n.Seq)
	}
	return n
}
