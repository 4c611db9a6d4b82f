package stream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/gateway/stream"
)

// testHub runs a hub on the minimal fakes behind a real HTTP server whose handler passes the
// hub the writer that wrap makes of net/http's; the user of a stream is its ?u= parameter.
// edit, if any, changes its configuration. stop shuts the hub down and reports Run's error.
func testHub(t *testing.T, wrap func(http.ResponseWriter) http.ResponseWriter, edit func(*stream.Config)) (srv *httptest.Server, push *chanPush, stop func() error) {
	t.Helper()
	push = &chanPush{}
	cfg := validConfig()
	cfg.Push = push
	if edit != nil {
		edit(&cfg)
	}
	hub, err := stream.NewHub(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	<-hub.Ready()
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := hub.Serve(wrap(w), r, stream.Client{UserID: r.URL.Query().Get("u")}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	var once bool
	var runErr error
	stop = func() error {
		if !once {
			once = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() {
		_ = stop()
		srv.Close()
	})
	return srv, push, stop
}

// sseFrame is one frame a client read: its id, event and data lines.
type sseFrame struct{ id, event, data string }

// readFrames opens a stream of user u on srv and returns the frames it reads, in order; the
// channel is closed when the stream ends.
func readFrames(t *testing.T, srv *httptest.Server, u string) <-chan sseFrame {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?u="+u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream of %s: status %d", u, resp.StatusCode)
	}
	frames := make(chan sseFrame, 16)
	go func() {
		defer close(frames)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				frames <- f
				f = sseFrame{}
			case strings.HasPrefix(line, "id: "):
				f.id = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				f.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				f.data = line[len("data: "):]
			}
		}
	}()
	return frames
}

// nextEvent returns the next frame with an event, skipping the retry hint and comments.
func nextEvent(t *testing.T, frames <-chan sseFrame) sseFrame {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the stream ended")
			}
			if f.event != "" {
				return f
			}
		case <-timeout:
			t.Fatal("no event")
		}
	}
}

func deliver(t *testing.T, push *chanPush, ds ...realtimev1.Delivery) {
	t.Helper()
	msg, err := json.Marshal(realtimev1.Batch{Deliveries: ds, OccurredAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	push.ch <- msg
}

func TestEachRecipientOfOneEventGetsItsOwnSeq(t *testing.T) {
	srv, push, _ := testHub(t, asIs, nil)
	alice, bob := readFrames(t, srv, "alice"), readFrames(t, srv, "bob")
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	n := realtimev1.Notification{ID: "ev", Type: "post.created", CreatedAt: at, Data: json.RawMessage(`{"post_id":"p1"}`)}
	toAlice, toBob := n, n
	toAlice.Seq, toBob.Seq = 7, 300
	deliver(t, push, realtimev1.Delivery{UserID: "alice", Notification: toAlice}, realtimev1.Delivery{UserID: "bob", Notification: toBob})
	for _, c := range []struct {
		frames <-chan sseFrame
		want   realtimev1.Notification
	}{{alice, toAlice}, {bob, toBob}} {
		f := nextEvent(t, c.frames)
		var got realtimev1.Notification
		if err := json.Unmarshal([]byte(f.data), &got); err != nil {
			t.Fatalf("data %q: %v", f.data, err)
		}
		if f.event != "notification" || f.id != strconv.FormatInt(c.want.Seq, 10) || got.Seq != c.want.Seq || got.ID != "ev" || !got.CreatedAt.Equal(at) || string(got.Data) != `{"post_id":"p1"}` {
			t.Errorf("frame %+v, want notification %d of event ev", f, c.want.Seq)
		}
	}
}

func asIs(w http.ResponseWriter) http.ResponseWriter { return w }

// flushOnly is a response writer that can flush but cannot be taken out of net/http, as
// behind a middleware that hides the rest.
type flushOnly struct {
	http.ResponseWriter
	http.Flusher
}

func TestAStreamThatCannotLeaveNetHTTPIsServedOnItUntilItEnds(t *testing.T) {
	srv, push, stop := testHub(t, func(w http.ResponseWriter) http.ResponseWriter {
		return flushOnly{w, w.(http.Flusher)}
	}, nil)
	frames := readFrames(t, srv, "alice")
	for seq := int64(1); seq <= 3; seq++ {
		deliver(t, push, realtimev1.Delivery{UserID: "alice", Notification: realtimev1.Notification{Seq: seq, ID: "ev", Type: "post.liked"}})
		if f := nextEvent(t, frames); f.event != "notification" || f.id != strconv.FormatInt(seq, 10) {
			t.Fatalf("frame %+v, want notification %d", f, seq)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f := nextEvent(t, frames); f.event != "reconnect" {
		t.Fatalf("frame %+v, want reconnect", f)
	}
	select {
	case _, ok := <-frames:
		if ok {
			t.Fatal("a frame after reconnect")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// goneRecorder is a presence store that reports each connection it unregisters.
type goneRecorder struct {
	nopPresence
	gone chan presence.Connection
}

func (g goneRecorder) Unregister(_ context.Context, c presence.Connection) (bool, error) {
	g.gone <- c
	return true, nil
}

func TestAStreamWhoseClientWentAwayEnds(t *testing.T) {
	for name, wrap := range map[string]func(http.ResponseWriter) http.ResponseWriter{
		"taken over": asIs,
		"on net/http": func(w http.ResponseWriter) http.ResponseWriter {
			return flushOnly{w, w.(http.Flusher)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			rec := goneRecorder{gone: make(chan presence.Connection, 1)}
			srv, _, _ := testHub(t, wrap, func(c *stream.Config) {
				c.Presence = rec
				c.Tuning.Sweep = 10 * time.Millisecond
			})
			ctx, cancel := context.WithCancel(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/?u=alice", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			cancel() // the client goes away: its connection is closed
			_ = resp.Body.Close()
			select {
			case c := <-rec.gone:
				if c.UserID != "alice" {
					t.Errorf("unregistered %+v, want alice's stream", c)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream of a client that went away did not end")
			}
		})
	}
}
