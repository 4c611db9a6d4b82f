package ports_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/piazza-social/piazza/api/eventsv1"
	notificationv1 "github.com/piazza-social/piazza/gen/piazza/notification/v1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/notification/adapters"
	"github.com/piazza-social/piazza/services/notification/adapters/storetest"
	"github.com/piazza-social/piazza/services/notification/app"
	"github.com/piazza-social/piazza/services/notification/domain"
	"github.com/piazza-social/piazza/services/notification/ports"
)

// The queries never reach these ports; they exist to satisfy app.New.
type nobody struct{}

func (nobody) Each(context.Context, string, func([]string) error) error { return nil }
func (nobody) Usernames(context.Context, []string) (map[string]string, error) {
	return map[string]string{}, nil
}
func (nobody) Routes(context.Context, []string) (map[string][]string, error) {
	return map[string][]string{}, nil
}
func (nobody) Publish(context.Context, string, []byte) error { return nil }

// start serves the inbox over a platform rpc server on a loopback port and returns a client
// made by rpc.Dial, and the store behind the server.
func start(t *testing.T) (notificationv1.NotificationServiceClient, *adapters.Store) {
	t.Helper()
	st, _ := storetest.OpenSQLiteStore(t)
	a, err := app.New(app.Config{MeterProvider: noop.NewMeterProvider()},
		app.Deps{Store: st, Followers: nobody{}, Users: nobody{}, Routes: nobody{}, Pusher: nobody{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	notificationv1.RegisterNotificationServiceServer(srv, ports.NewGRPCServer(a))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := rpc.Dial(rpc.ClientConfig{Target: ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return notificationv1.NewNotificationServiceClient(conn), st
}

var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

// fill stores n post.liked notifications for userID and returns their drafts, oldest first.
func fill(t *testing.T, st *adapters.Store, userID string, n int) []domain.Draft {
	t.Helper()
	var out []domain.Draft
	for i := range n {
		d := domain.Draft{
			EventID:   "event-" + string(rune('a'+i)),
			Type:      eventsv1.PostLiked,
			Data:      json.RawMessage(`{"actor":{"id":"x","username":"xena"},"post_id":"p"}`),
			CreatedAt: t0.Add(time.Duration(i) * time.Second),
		}
		if _, _, err := st.Deliver(t.Context(), d, []string{userID}); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func seqs(items []*notificationv1.Notification) []int64 {
	var out []int64
	for _, n := range items {
		out = append(out, n.GetSeq())
	}
	return out
}

func TestInboxRoundTripsOverGRPC(t *testing.T) {
	c, st := start(t)
	ctx := t.Context()
	drafts := fill(t, st, "alice", 5)

	page, err := c.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{UserId: "alice", Limit: 2})
	if err != nil || !slices.Equal(seqs(page.GetItems()), []int64{5, 4}) || page.GetNextCursor() == "" {
		t.Fatalf("first page %v, %v; want seqs [5 4] and a cursor", page, err)
	}
	newest := page.GetItems()[0]
	if newest.GetId() != drafts[4].EventID || newest.GetType() != eventsv1.PostLiked ||
		string(newest.GetData()) != string(drafts[4].Data) || !newest.GetCreatedAt().AsTime().Equal(drafts[4].CreatedAt) || newest.GetRead() {
		t.Fatalf("notification %v, want the fifth draft, unread", newest)
	}
	var all []int64
	cursor := ""
	for {
		p, err := c.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{UserId: "alice", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, seqs(p.GetItems())...)
		if cursor = p.GetNextCursor(); cursor == "" {
			break
		}
	}
	if !slices.Equal(all, []int64{5, 4, 3, 2, 1}) {
		t.Fatalf("paged %v, want 5..1", all)
	}

	since, err := c.ListSince(ctx, &notificationv1.ListSinceRequest{UserId: "alice", AfterSeq: 1, Limit: 3})
	if err != nil || !slices.Equal(seqs(since.GetItems()), []int64{2, 3, 4}) || !since.GetHasMore() {
		t.Fatalf("since 1 = %v, %v; want [2 3 4] with more", since, err)
	}

	if _, err := c.MarkRead(ctx, &notificationv1.MarkReadRequest{UserId: "alice", UpToSeq: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MarkRead(ctx, &notificationv1.MarkReadRequest{UserId: "alice", UpToSeq: 1}); err != nil {
		t.Fatal(err) // backwards: accepted, changes nothing
	}
	u, err := c.UnreadCount(ctx, &notificationv1.UnreadCountRequest{UserId: "alice"})
	if err != nil || u.GetCount() != 2 || u.GetLastSeq() != 5 {
		t.Fatalf("unread %v, %v; want 2 of 5", u, err)
	}
	if _, err := c.MarkRead(ctx, &notificationv1.MarkReadRequest{UserId: "alice", UpToSeq: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	u, err = c.UnreadCount(ctx, &notificationv1.UnreadCountRequest{UserId: "alice"})
	if err != nil || u.GetCount() != 0 || u.GetLastSeq() != 5 {
		t.Fatalf("unread after marking everything %v, %v; want 0 of 5", u, err)
	}
	since, err = c.ListSince(ctx, &notificationv1.ListSinceRequest{UserId: "alice"})
	if err != nil || len(since.GetItems()) != 5 || !since.GetItems()[4].GetRead() {
		t.Fatalf("since 0 = %v, %v; want all 5, read", since, err)
	}
}

func TestErrorCodesAndFieldViolationsCrossTheWire(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	tests := []struct {
		name     string
		call     func() error
		pointers []string
	}{
		{"list without user and with a forged cursor", func() error {
			_, err := c.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{Cursor: "forged"})
			return err
		}, []string{"/user_id", "/cursor"}},
		{"list with too large a page", func() error {
			_, err := c.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{UserId: "u", Limit: 101})
			return err
		}, []string{"/limit"}},
		{"since with a negative seq and too large a limit", func() error {
			_, err := c.ListSince(ctx, &notificationv1.ListSinceRequest{UserId: "u", AfterSeq: -1, Limit: 1001})
			return err
		}, []string{"/after_seq", "/limit"}},
		{"unread without user", func() error {
			_, err := c.UnreadCount(ctx, &notificationv1.UnreadCountRequest{})
			return err
		}, []string{"/user_id"}},
		{"mark read below zero", func() error {
			_, err := c.MarkRead(ctx, &notificationv1.MarkReadRequest{UserId: "u", UpToSeq: -1})
			return err
		}, []string{"/up_to_seq"}},
	}
	for _, tc := range tests {
		err := tc.call()
		e, ok := errors.AsType[*errs.Error](err)
		if !ok || e.Code != errs.ValidationFailed {
			t.Errorf("%s: err = %v (%T), want validation_failed", tc.name, err, err)
			continue
		}
		var got []string
		for _, f := range e.Fields {
			got = append(got, f.Pointer)
		}
		if !slices.Equal(got, tc.pointers) {
			t.Errorf("%s: pointers %v, want %v", tc.name, got, tc.pointers)
		}
	}
}
