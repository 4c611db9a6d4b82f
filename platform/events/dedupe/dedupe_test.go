package dedupe_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/events/dedupe"
)

func TestDedupeOnSQLite(t *testing.T) {
	runSuite(t, databasetest.Opener(databasetest.SQLiteURL))
}

// runSuite is the behaviour of dedupe on one engine; open(t) returns a new handle on t's
// database (see databasetest.Opener).
func runSuite(t *testing.T, open func(t *testing.T) *database.DB) {
	t.Run("FirstClaimWinsPerConsumer", func(t *testing.T) { testFirstClaim(t, open) })
	t.Run("RedeliveredEventIsANoOp", func(t *testing.T) { testRedelivery(t, open) })
	t.Run("FailedHandlerLeavesNoClaim", func(t *testing.T) { testFailedHandler(t, open) })
	t.Run("ConcurrentDeliveriesRunTheEffectOnce", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("PruneDeletesOnlyOldClaims", func(t *testing.T) { testPrune(t, open) })
}

// setup opens t's database with the dedupe schema and an effects table.
func setup(t *testing.T, open func(t *testing.T) *database.DB) (*database.DB, *dedupe.Deduper) {
	t.Helper()
	db := open(t)
	ctx := context.Background()
	if _, err := database.Migrate(ctx, db, dedupe.Migrations); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := db.SQL().ExecContext(ctx, `CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	d, err := dedupe.New(dedupe.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return db, d
}

func effects(t *testing.T, db *database.DB, eventID string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM effects WHERE event_id = $1`, eventID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func effect(eventID string) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO effects (event_id) VALUES ($1)`, eventID)
		return err
	}
}

func claim(t *testing.T, db *database.DB, d *dedupe.Deduper, consumer, eventID string) bool {
	t.Helper()
	var first bool
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		first, err = d.Claim(context.Background(), tx, consumer, eventID)
		return err
	})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return first
}

func testFirstClaim(t *testing.T, open func(t *testing.T) *database.DB) {
	db, d := setup(t, open)
	if !claim(t, db, d, "notification", "ev-1") {
		t.Fatal("first claim reported a duplicate")
	}
	if claim(t, db, d, "notification", "ev-1") {
		t.Fatal("second claim by the same consumer reported first")
	}
	if !claim(t, db, d, "search-indexer", "ev-1") {
		t.Fatal("another consumer's first claim of the event reported a duplicate")
	}
	if _, err := d.Claim(context.Background(), nil, "", "ev-1"); err == nil {
		t.Fatal("an empty consumer name was accepted")
	}
}

func testRedelivery(t *testing.T, open func(t *testing.T) *database.DB) {
	db, d := setup(t, open)
	ctx := context.Background()
	for i, wantRan := range []bool{true, false, false} {
		ran, err := d.Once(ctx, "notification", "ev-2", effect("ev-2"))
		if err != nil || ran != wantRan {
			t.Fatalf("delivery %d: ran=%v err=%v, want ran=%v", i+1, ran, err, wantRan)
		}
	}
	if n := effects(t, db, "ev-2"); n != 1 {
		t.Fatalf("effect applied %d times, want once", n)
	}
}

func testFailedHandler(t *testing.T, open func(t *testing.T) *database.DB) {
	db, d := setup(t, open)
	ctx := context.Background()
	boom := errors.New("downstream unavailable")
	ran, err := d.Once(ctx, "notification", "ev-3", func(tx *sql.Tx) error {
		if err := effect("ev-3")(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || ran {
		t.Fatalf("failing handler: ran=%v err=%v, want the handler's error", ran, err)
	}
	if n := effects(t, db, "ev-3"); n != 0 {
		t.Fatalf("the failed handler's effect was kept (%d rows)", n)
	}
	// The retry finds no claim and runs in full.
	if ran, err := d.Once(ctx, "notification", "ev-3", effect("ev-3")); err != nil || !ran {
		t.Fatalf("retry: ran=%v err=%v, want it to run", ran, err)
	}
	if n := effects(t, db, "ev-3"); n != 1 {
		t.Fatalf("effect applied %d times after the retry, want once", n)
	}
}

func testConcurrent(t *testing.T, open func(t *testing.T) *database.DB) {
	db, _ := setup(t, open)
	// Separate pools, as separate consumer instances would have.
	const deliveries = 6
	dedupers := make([]*dedupe.Deduper, deliveries)
	for i := range dedupers {
		d, err := dedupe.New(dedupe.Config{DB: open(t)})
		if err != nil {
			t.Fatal(err)
		}
		dedupers[i] = d
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ran   int
		errs  []error
		start = make(chan struct{})
	)
	for _, d := range dedupers {
		wg.Go(func() {
			<-start
			ok, err := d.Once(context.Background(), "notification", "ev-4", func(tx *sql.Tx) error {
				if err := effect("ev-4")(tx); err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // hold the claim uncommitted while others arrive
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				ran++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent deliveries failed: %v", errs)
	}
	if ran != 1 || effects(t, db, "ev-4") != 1 {
		t.Fatalf("%d deliveries ran the handler, %d effects; want exactly one", ran, effects(t, db, "ev-4"))
	}
}

func testPrune(t *testing.T, open func(t *testing.T) *database.DB) {
	db, d := setup(t, open)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	if _, err := db.SQL().ExecContext(ctx,
		`INSERT INTO processed_events (consumer, event_id, claimed_at) VALUES ($1, $2, $3), ($1, $4, $3)`,
		"notification", "old-1", old, "old-2"); err != nil {
		t.Fatal(err)
	}
	claim(t, db, d, "notification", "recent")
	n, err := d.Prune(ctx, 24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("prune deleted %d, %v; want the 2 old claims", n, err)
	}
	if claim(t, db, d, "notification", "recent") {
		t.Fatal("the recent claim was pruned")
	}
	if !claim(t, db, d, "notification", "old-1") {
		t.Fatal("the pruned claim still counts")
	}
}
