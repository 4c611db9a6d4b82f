package ports_test

import (
	"context"
	"net"
	"testing"
	"time"

	presencev1 "github.com/piazza-social/piazza/gen/piazza/presence/v1"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/errs"
	presencestore "github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/platform/rpc"
	"github.com/piazza-social/piazza/services/presence"
	"github.com/piazza-social/piazza/services/presence/domain"
)

var t0 = time.Date(2031, 3, 14, 15, 0, 0, 0, time.UTC)

// start serves the presence service, built as production builds it, on a platform rpc server
// on a loopback port, and returns a client made by rpc.Dial, the service and its presence store.
func start(t *testing.T) (presencev1.PresenceServiceClient, *presence.Service, *presencestore.Memory) {
	t.Helper()
	db := databasetest.OpenSQLite(t)
	if err := presence.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	live, err := presencestore.NewMemory(presencestore.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := presence.New(presence.Config{}, presence.Deps{DB: db, Presence: live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(rpc.ServerConfig{}, nil)
	svc.Register(srv)
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
	return presencev1.NewPresenceServiceClient(conn), svc, live
}

func record(t *testing.T, svc *presence.Service, connected bool, user, conn string, at time.Time) {
	t.Helper()
	h := svc.App().RecordDisconnected
	if connected {
		h = svc.App().RecordConnected
	}
	if _, err := h.Handle(t.Context(), domain.Event{UserID: user, ConnectionID: conn, InstanceID: "gw-1", At: at}); err != nil {
		t.Fatal(err)
	}
}

func TestGetPresenceAnswersOnlineAndLastSeen(t *testing.T) {
	ctx := t.Context()
	c, svc, live := start(t)

	never, err := c.GetPresence(ctx, &presencev1.GetPresenceRequest{UserId: "nobody"})
	if err != nil || never.GetOnline() || never.LastSeenAt != nil {
		t.Fatalf("never-seen user: %v, %v; want offline with last_seen_at unset", never, err)
	}

	record(t, svc, true, "alice", "c1", t0)
	record(t, svc, false, "alice", "c1", t0.Add(time.Minute))
	off, err := c.GetPresence(ctx, &presencev1.GetPresenceRequest{UserId: "alice"})
	if err != nil || off.GetOnline() || !off.GetLastSeenAt().AsTime().Equal(t0.Add(time.Minute)) {
		t.Fatalf("offline user: %v, %v; want last seen at the disconnect %s", off, err, t0.Add(time.Minute))
	}

	if _, err := live.Register(ctx, presencestore.Connection{UserID: "alice", ConnectionID: "c2", InstanceID: "gw-1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	on, err := c.GetPresence(ctx, &presencev1.GetPresenceRequest{UserId: "alice"})
	if err != nil || !on.GetOnline() || on.GetLastSeenAt().AsTime().Before(before.Truncate(time.Microsecond)) {
		t.Fatalf("online user: %v, %v; want online, last seen now", on, err)
	}
}

func TestListSessionsPagesNewestFirstWithOpenSessionsUnended(t *testing.T) {
	ctx := t.Context()
	c, svc, _ := start(t)
	record(t, svc, true, "bob", "old", t0)
	record(t, svc, false, "bob", "old", t0.Add(time.Minute))
	record(t, svc, true, "bob", "new", t0.Add(time.Hour))

	first, err := c.ListSessions(ctx, &presencev1.ListSessionsRequest{UserId: "bob", Limit: 1})
	if err != nil || len(first.GetItems()) != 1 || first.GetNextCursor() == "" {
		t.Fatalf("first page: %v, %v; want one session and a cursor", first, err)
	}
	if s := first.GetItems()[0]; s.GetConnectionId() != "new" || s.GetInstanceId() != "gw-1" ||
		!s.GetConnectedAt().AsTime().Equal(t0.Add(time.Hour)) || s.DisconnectedAt != nil {
		t.Fatalf("newest session = %v, want the open one, disconnected_at unset", s)
	}
	second, err := c.ListSessions(ctx, &presencev1.ListSessionsRequest{UserId: "bob", Limit: 1, Cursor: first.GetNextCursor()})
	if err != nil || len(second.GetItems()) != 1 || second.GetNextCursor() != "" {
		t.Fatalf("second page: %v, %v; want the last session and no cursor", second, err)
	}
	if s := second.GetItems()[0]; s.GetConnectionId() != "old" || !s.GetDisconnectedAt().AsTime().Equal(t0.Add(time.Minute)) {
		t.Fatalf("older session = %v, want the ended one", s)
	}
}

func TestInvalidRequestsAreValidationFailedOverGRPC(t *testing.T) {
	ctx := t.Context()
	c, _, _ := start(t)
	_, err := c.GetPresence(ctx, &presencev1.GetPresenceRequest{})
	if code := errs.CodeOf(err); code != errs.ValidationFailed {
		t.Errorf("GetPresence without user_id: %v (code %s), want validation_failed", err, code)
	}
	_, err = c.ListSessions(ctx, &presencev1.ListSessionsRequest{UserId: "u", Cursor: "garbage!"})
	if code := errs.CodeOf(err); code != errs.ValidationFailed {
		t.Errorf("ListSessions with a bad cursor: %v (code %s), want validation_failed", err, code)
	}
}
