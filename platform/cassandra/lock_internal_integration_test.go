//go:build integration

package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/piazza-social/piazza/platform/infratest"
)

// newLockForTest prepares a fresh keyspace (dropped at the end) and returns a lock on it.
// cassandratest cannot be used here: it imports this package.
func newLockForTest(t *testing.T, owner string, ttl time.Duration) *lock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, Config{Hosts: infratest.CassandraHosts(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ks := "it_lock_" + uuid.NewString()[:8]
	m := &migrator{session: s, keyspace: ks}
	if err := m.bootstrap(ctx, "{'class': 'SimpleStrategy', 'replication_factor': 1}"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx); err != nil {
			t.Errorf("drop %s: %v", ks, err)
		}
	})
	return &lock{session: s, keyspace: ks, owner: owner, ttl: ttl, consistency: m.writeConsistency, log: slog.New(slog.DiscardHandler)}
}

func TestHeldLockIsRenewedPastItsTTL(t *testing.T) {
	l := newLockForTest(t, "a", 2*time.Second)
	ctx := context.Background()
	held, err := l.acquire(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release(ctx)
	// Two TTLs pass: without renewal the row would have expired by then.
	select {
	case <-held.ctx.Done():
		t.Fatalf("lock lost while its holder was alive: %v", context.Cause(held.ctx))
	case <-time.After(2 * l.ttl):
	}
	other := *l
	other.owner = "b"
	if ok, holder, _, err := other.try(ctx, time.Now()); err != nil || ok || holder != "a" {
		t.Fatalf("second migrator: ok=%v holder=%q err=%v; want the lock still held by a", ok, holder, err)
	}
}

func TestLosingTheLockCancelsTheMigrationContext(t *testing.T) {
	l := newLockForTest(t, "a", 3*time.Second)
	ctx := context.Background()
	held, err := l.acquire(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release(ctx)
	// Another migrator takes over, as if our row had expired while we were partitioned away.
	applied, err := l.session.Query(fmt.Sprintf(`UPDATE %s.%s SET owner = 'b' WHERE name = ? IF EXISTS`, l.keyspace, lockTable), lockName).
		MapScanCASContext(ctx, map[string]any{})
	if err != nil || !applied {
		t.Fatalf("take the lock over: applied=%v, %v", applied, err)
	}
	select {
	case <-held.ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the holder did not notice it lost the lock")
	}
	cause := context.Cause(held.ctx)
	if !errors.Is(cause, ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
	if err := held.explain(context.Canceled); !errors.Is(err, ErrLockLost) {
		t.Errorf("explain(...) = %v, want it to carry ErrLockLost", err)
	}
}
