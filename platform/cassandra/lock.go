package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// The migration lock.
//
// One row per keyspace in schema_migrations_lock, key "migrate", holds the owner id of the
// migrator allowed to change the keyspace's schema. Every operation on it is a lightweight
// transaction at SERIAL consistency, i.e. a Paxos round across all data centres, so two
// migrators anywhere in the cluster can never both believe they hold it:
//
//   - acquire: INSERT ... IF NOT EXISTS USING TTL; a migrator that finds the row taken polls
//     with jittered exponential backoff (100 ms doubling to 2 s) until it wins or LockTimeout
//     passes, logging who holds the lock and since when.
//   - renew: about every TTL/3 the holder rewrites the row with a fresh TTL, IF owner = itself. A long
//     step thus keeps the lock, while a crashed holder's row expires at most one TTL after its
//     last renewal and frees the lock without an operator.
//   - lost: if a renewal finds another owner, or no renewal has succeeded for so long that the
//     row may have expired, the migration's context is cancelled (cause ErrLockLost) so this
//     migrator stops before the next statement instead of racing the new holder.
//   - release: DELETE ... IF owner = itself, after the last step (also on failure).
//
// An LWT that times out may still have been applied; a later attempt that finds its own owner
// id in the row knows it holds the lock.
type lock struct {
	session     *gocql.Session
	keyspace    string
	owner       string
	ttl         time.Duration
	consistency gocql.Consistency // commit consistency of the LWTs
	log         *slog.Logger
}

const (
	lockMinBackoff     = 100 * time.Millisecond
	lockMaxBackoff     = 2 * time.Second
	lockReleaseTimeout = 10 * time.Second
)

// heldLock is an acquired lock whose renewal runs in the background until release.
type heldLock struct {
	l *lock
	// ctx is the migration's context: cancelled with an ErrLockLost cause when the lock is lost.
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	since  time.Time
}

// acquire takes the lock, waiting at most timeout for another holder to release it or for its
// row to expire.
func (l *lock) acquire(ctx context.Context, timeout time.Duration) (*heldLock, error) {
	deadline := time.Now().Add(timeout)
	backoff := lockMinBackoff
	var lastHolder string
	var lastSince time.Time
	var lastErr error
	for {
		now := time.Now().UTC().Truncate(time.Millisecond)
		ok, holder, since, err := l.try(ctx, now)
		switch {
		case err == nil && ok:
			l.log.InfoContext(ctx, "cassandra migration lock acquired", "keyspace", l.keyspace, "owner", l.owner)
			return l.hold(ctx, now), nil
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cassandra: waiting for the migration lock of %s: %w", l.keyspace, ctx.Err())
			}
			lastErr = err
			l.log.WarnContext(ctx, "cassandra migration lock: attempt failed, retrying", "keyspace", l.keyspace, "error", err)
		case holder != lastHolder:
			lastHolder, lastSince, lastErr = holder, since, nil
			l.log.InfoContext(ctx, "cassandra migration lock held by another migrator, waiting", "keyspace", l.keyspace,
				"holder", holder, "held_since", since)
		}

		remaining := time.Until(deadline)
		if remaining <= 0 {
			if lastErr != nil {
				return nil, fmt.Errorf("%w of keyspace %s after %s: last attempt: %w", ErrLockTimeout, l.keyspace, timeout, lastErr)
			}
			return nil, fmt.Errorf("%w of keyspace %s after %s: held by %s since %s (a crashed holder's lock expires within %s)",
				ErrLockTimeout, l.keyspace, timeout, lastHolder, lastSince.Format(time.RFC3339), l.ttl)
		}
		// Jitter spreads migrators that started together, so they do not collide in lockstep.
		wait := min(backoff/2+rand.N(backoff/2+1), remaining)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("cassandra: waiting for the migration lock of %s: %w", l.keyspace, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, lockMaxBackoff)
	}
}

// try makes one attempt to take the lock. When the lock is taken it returns the holder.
func (l *lock) try(ctx context.Context, now time.Time) (ok bool, holder string, since time.Time, err error) {
	row := map[string]any{}
	applied, err := l.session.Query(`INSERT INTO `+l.keyspace+`.`+lockTable+` (name, owner, acquired_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`,
		lockName, l.owner, now, l.ttlSeconds()).
		Consistency(l.consistency).SerialConsistency(gocql.Serial).MapScanCASContext(ctx, row)
	if err != nil {
		return false, "", time.Time{}, err
	}
	if applied {
		return true, l.owner, now, nil
	}
	holder, _ = row["owner"].(string)
	since, _ = row["acquired_at"].(time.Time)
	// Our own earlier attempt may have timed out on the client after the server applied it.
	return holder == l.owner, holder, since, nil
}

func (l *lock) ttlSeconds() int {
	return int((l.ttl + time.Second - 1) / time.Second)
}

// hold starts renewing the lock taken at since.
func (l *lock) hold(ctx context.Context, since time.Time) *heldLock {
	lctx, cancel := context.WithCancelCause(ctx)
	h := &heldLock{l: l, ctx: lctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}), since: since}
	go h.renewLoop()
	return h
}

func (h *heldLock) renewLoop() {
	defer close(h.done)
	// Cassandra expires cells at whole seconds, so a row written with TTL n may expire up to
	// one second early: plan with one second less.
	life := h.l.ttl - time.Second
	interval := life / 3
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-h.ctx.Done():
			return
		case <-ticker.C:
		}
		rctx, cancel := context.WithTimeout(h.ctx, interval)
		ok, holder, err := h.renew(rctx)
		cancel()
		switch {
		case err == nil && ok:
			lastOK = time.Now()
		case err == nil:
			why := "it expired"
			if holder != "" {
				why = "now held by " + holder
			}
			h.cancel(fmt.Errorf("%w: keyspace %s: %s", ErrLockLost, h.l.keyspace, why))
			return
		case time.Since(lastOK)+interval >= life:
			// The row may expire before the next attempt: stop before someone else starts.
			h.cancel(fmt.Errorf("%w: keyspace %s: not renewed for %s: %w", ErrLockLost, h.l.keyspace, time.Since(lastOK).Round(time.Second), err))
			return
		default:
			h.l.log.WarnContext(h.ctx, "cassandra migration lock: renewal failed, retrying", "keyspace", h.l.keyspace, "error", err)
		}
	}
}

func (h *heldLock) renew(ctx context.Context) (ok bool, holder string, err error) {
	row := map[string]any{}
	applied, err := h.l.session.Query(`UPDATE `+h.l.keyspace+`.`+lockTable+` USING TTL ? SET owner = ?, acquired_at = ? WHERE name = ? IF owner = ?`,
		h.l.ttlSeconds(), h.l.owner, h.since, lockName, h.l.owner).
		Consistency(h.l.consistency).SerialConsistency(gocql.Serial).MapScanCASContext(ctx, row)
	if err != nil {
		return false, "", err
	}
	holder, _ = row["owner"].(string)
	return applied, holder, nil
}

// release stops the renewal and deletes the lock row if it is still ours. A failure is only
// logged: the row expires within one TTL anyway, and the migration's outcome stands.
func (h *heldLock) release(ctx context.Context) {
	close(h.stop)
	<-h.done
	h.cancel(nil)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockReleaseTimeout)
	defer cancel()
	row := map[string]any{}
	_, err := h.l.session.Query(`DELETE FROM `+h.l.keyspace+`.`+lockTable+` WHERE name = ? IF owner = ?`, lockName, h.l.owner).
		Consistency(h.l.consistency).SerialConsistency(gocql.Serial).MapScanCASContext(ctx, row)
	if err != nil {
		h.l.log.WarnContext(ctx, "cassandra migration lock: release failed; it expires by itself", "keyspace", h.l.keyspace,
			"ttl", h.l.ttl, "error", err)
		return
	}
	h.l.log.InfoContext(ctx, "cassandra migration lock released", "keyspace", h.l.keyspace, "owner", h.l.owner)
}

// explain puts the lost lock first when err came from the cancelled migration context.
func (h *heldLock) explain(err error) error {
	if cause := context.Cause(h.ctx); errors.Is(cause, ErrLockLost) {
		return fmt.Errorf("%w; %w", cause, err)
	}
	return err
}
