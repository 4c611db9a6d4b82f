package user_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/user"
	"github.com/piazza-social/piazza/services/user/adapters"
	"github.com/piazza-social/piazza/services/user/adapters/storetest"
	"github.com/piazza-social/piazza/services/user/app"
)

type issuer struct{}

func (issuer) Issue(userID, sessionID string) (string, time.Time, error) {
	return "access/" + userID + "/" + sessionID, time.Now().Add(15 * time.Minute), nil
}

type keys struct{}

func (keys) JWKS() []byte { return []byte(`{"keys":[]}`) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var tiny = adapters.Argon2idParams{MemoryKiB: 64, Iterations: 1}

func TestNewRefusesMissingDependencies(t *testing.T) {
	_, ob, db := storetest.OpenSQLiteStore(t)
	for name, deps := range map[string]user.Deps{
		"no database": {Outbox: ob, Tokens: issuer{}, Keys: keys{}},
		"no outbox":   {DB: db, Tokens: issuer{}, Keys: keys{}},
		"no issuer":   {DB: db, Outbox: ob, Keys: keys{}},
		"no keys":     {DB: db, Outbox: ob, Tokens: issuer{}},
	} {
		if _, err := user.New(user.Config{PasswordHashing: tiny}, deps, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestMigrateIsRepeatable(t *testing.T) {
	_, _, db := storetest.OpenSQLiteStore(t) // applied once already
	if err := user.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
}

func TestRunPurgesExpiredSessionsUntilCancelled(t *testing.T) {
	_, ob, db := storetest.OpenSQLiteStore(t)
	clk := &clock{now: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}
	svc, err := user.New(user.Config{PasswordHashing: tiny, Now: clk.Now, PurgeInterval: 10 * time.Millisecond},
		user.Deps{DB: db, Outbox: ob, Tokens: issuer{}, Keys: keys{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.App().SignUp.Handle(t.Context(), app.SignUp{Username: "alice", Email: "alice@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	sessions := func() int {
		var n int
		if err := db.SQL().QueryRowContext(t.Context(), `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	clk.Advance(app.DefaultRefreshTTL + time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired session was not purged")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancellation", err)
	}
}
