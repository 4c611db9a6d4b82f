// Package app is the dead-letter archive's application layer: archiving what arrives on the
// dead-letter topic, and the operator's use cases on the archive (list, show, replay one or
// all, purge one or by age), each of which is logged with the ids of the entries it touched.
// The ports it needs (the store, the republisher) are small interfaces it owns.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/services/deadletter/domain"
)

// Store is the persistence the use cases need; adapters.Store implements it. Ids passed to it
// are UUIDs.
type Store interface {
	// Add stores e unless an entry with its DedupeKey exists, and reports whether it did.
	Add(ctx context.Context, e domain.Entry) (bool, error)
	// Get returns the entry with id, or domain.ErrNotFound.
	Get(ctx context.Context, id string) (domain.Entry, error)
	// List returns the entries f selects, newest first.
	List(ctx context.Context, f domain.Filter) ([]domain.Entry, error)
	// Pending returns up to limit never-replayed entries of topic (empty: all), oldest first,
	// with after < id <= through (after empty: from the oldest).
	Pending(ctx context.Context, topic, after, through string, limit int) ([]domain.Entry, error)
	// MarkReplayed records a replay at at and returns the updated entry, or domain.ErrNotFound.
	MarkReplayed(ctx context.Context, id string, at time.Time) (domain.Entry, error)
	// Delete removes the entry, or returns domain.ErrNotFound.
	Delete(ctx context.Context, id string) error
	// DeleteArchivedBefore removes up to limit entries archived before cutoff and returns
	// their ids.
	DeleteArchivedBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	// Depth counts the never-replayed entries per original topic.
	Depth(ctx context.Context) (map[string]int64, error)
}

// Republisher publishes a message to a topic of the bus; adapters.Republisher implements it.
type Republisher interface {
	Republish(ctx context.Context, topic string, l domain.Letter) error
}

// ErrNoRepublisher is returned by the replays of an application built without a Republisher.
var ErrNoRepublisher = errors.New("deadletter: replay needs a publisher, none configured")

// Config tunes the application. Zero fields take the defaults.
type Config struct {
	// ReplayBatch is how many entries ReplayAll reads at a time. Default 100.
	ReplayBatch int
	// PurgeBatch is how many entries one purge statement deletes. Default 500.
	PurgeBatch int
	// MaxListLimit caps List's limit. Default 1000.
	MaxListLimit int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Deps are the adapters the application runs on. Store is required; Republisher is needed by
// Replay and ReplayAll only.
type Deps struct {
	Store       Store
	Republisher Republisher
}

// Application holds the archive's use cases.
type Application struct {
	store Store
	pub   Republisher
	cfg   Config
	log   *slog.Logger
}

// New builds the application. A nil log discards its logs.
func New(cfg Config, deps Deps, log *slog.Logger) (*Application, error) {
	if deps.Store == nil {
		return nil, errors.New("deadletter: Deps.Store is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReplayBatch == 0 {
		cfg.ReplayBatch = 100
	}
	if cfg.PurgeBatch == 0 {
		cfg.PurgeBatch = 500
	}
	if cfg.MaxListLimit == 0 {
		cfg.MaxListLimit = 1000
	}
	if cfg.ReplayBatch < 0 || cfg.PurgeBatch < 0 || cfg.MaxListLimit < 0 {
		return nil, errors.New("deadletter: ReplayBatch, PurgeBatch and MaxListLimit must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Application{store: deps.Store, pub: deps.Republisher, cfg: cfg, log: log}, nil
}

// canonicalID returns id in the form the store holds (lower-case, hyphenated) and whether it
// can be an entry id at all; anything else cannot be found.
func canonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// Archive stores the dead letter l. A redelivery of a dead letter already archived changes
// nothing and returns the new entry's would-be content with archived false. It never fails on
// the content of l: whatever arrived on the dead-letter topic is kept as it is. Its errors are
// the store's, worth retrying.
func (a *Application) Archive(ctx context.Context, l domain.Letter) (e domain.Entry, archived bool, err error) {
	id, err := uuid.NewV7()
	if err != nil {
		return domain.Entry{}, false, fmt.Errorf("deadletter: entry id: %w", err)
	}
	e = domain.NewEntry(id.String(), l, a.cfg.Now())
	archived, err = a.store.Add(ctx, e)
	if err != nil {
		return domain.Entry{}, false, err
	}
	if !archived {
		a.log.DebugContext(ctx, "dead letter already archived, redelivery ignored",
			"message_id", e.MessageID, "dedupe_key", e.DedupeKey)
		return e, false, nil
	}
	a.log.InfoContext(ctx, "dead letter archived",
		"entry_id", e.ID, "message_id", e.MessageID, "topic", e.Topic, "handler", e.Handler,
		"attempts", e.Attempts, "reason", e.Reason)
	return e, true, nil
}

// ListQuery selects a page of entries, newest first.
type ListQuery struct {
	// Topic keeps only the entries of this original topic; empty: all.
	Topic string
	// Cursor continues after the page that returned it; empty: the first page.
	Cursor string
	// Limit is the page size; 0 means 50, and it is capped at Config.MaxListLimit.
	Limit int
}

// Page is a page of entries and the cursor of the next one ("" when this is the last).
type Page struct {
	Items      []domain.Entry
	NextCursor string
}

// List returns a page of entries, newest first. Pages are stable under concurrent archiving:
// a new entry sorts before the first page, so following the cursors never repeats or skips an
// entry. A cursor no page returned fails with domain.ErrInvalidCursor.
func (a *Application) List(ctx context.Context, q ListQuery) (Page, error) {
	switch {
	case q.Limit < 0:
		return Page{}, fmt.Errorf("deadletter: limit %d is negative", q.Limit)
	case q.Limit == 0:
		q.Limit = 50
	case q.Limit > a.cfg.MaxListLimit:
		q.Limit = a.cfg.MaxListLimit
	}
	if q.Cursor != "" {
		var ok bool
		if q.Cursor, ok = canonicalID(q.Cursor); !ok {
			return Page{}, domain.ErrInvalidCursor
		}
	}
	// One more than asked tells whether a next page exists.
	items, err := a.store.List(ctx, domain.Filter{Topic: q.Topic, Before: q.Cursor, Limit: q.Limit + 1})
	if err != nil {
		return Page{}, err
	}
	p := Page{Items: items}
	if len(items) > q.Limit {
		p.Items = items[:q.Limit]
		p.NextCursor = p.Items[q.Limit-1].ID
	}
	a.log.DebugContext(ctx, "dead letters listed", "topic", q.Topic, "count", len(p.Items))
	return p, nil
}

// Show returns the entry id (in any case), or domain.ErrNotFound.
func (a *Application) Show(ctx context.Context, raw string) (domain.Entry, error) {
	id, ok := canonicalID(raw)
	if !ok {
		return domain.Entry{}, fmt.Errorf("%w: %q", domain.ErrNotFound, raw)
	}
	e, err := a.store.Get(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Entry{}, fmt.Errorf("%w: %s", domain.ErrNotFound, id)
	}
	return e, err
}

// Replay publishes the original message of entry id (same UUID and payload, its metadata
// without the failure record) to its original topic, then records the replay. It replays
// whether or not the entry was replayed before: an explicit request is always honoured. The
// message is published before the replay is recorded, so a failure in between replays it
// without recording it; consumers are idempotent, so a second replay is harmless. If the
// handler fails again, the message comes back as a new entry.
func (a *Application) Replay(ctx context.Context, id string) (domain.Entry, error) {
	if a.pub == nil {
		return domain.Entry{}, ErrNoRepublisher
	}
	e, err := a.Show(ctx, id)
	if err != nil {
		return domain.Entry{}, err
	}
	return a.replay(ctx, e)
}

func (a *Application) replay(ctx context.Context, e domain.Entry) (domain.Entry, error) {
	topic, l, err := e.Original()
	if err == nil {
		err = a.pub.Republish(ctx, topic, l)
	}
	if err != nil {
		a.log.ErrorContext(ctx, "dead letter replay failed",
			"entry_id", e.ID, "message_id", e.MessageID, "topic", e.Topic, "error", err)
		return domain.Entry{}, fmt.Errorf("deadletter: replay %s: %w", e.ID, err)
	}
	updated, err := a.store.MarkReplayed(ctx, e.ID, a.cfg.Now())
	if err != nil {
		// Published, but not recorded: say so, the entry still counts as pending.
		a.log.ErrorContext(ctx, "dead letter replayed but the replay was not recorded",
			"entry_id", e.ID, "message_id", e.MessageID, "topic", topic, "error", err)
		return domain.Entry{}, fmt.Errorf("deadletter: replayed %s but could not record it: %w", e.ID, err)
	}
	a.log.InfoContext(ctx, "dead letter replayed",
		"entry_id", e.ID, "message_id", e.MessageID, "topic", topic, "replay_count", updated.ReplayCount)
	return updated, nil
}

// ReplayAll replays, oldest first, every entry never replayed of topic (empty: every topic)
// that was archived when it started; entries archived meanwhile (a replayed message failing
// again, say) wait for the next request. Oldest first keeps an aggregate's events in their
// original order. It stops at the first failure and returns how many it replayed until then.
func (a *Application) ReplayAll(ctx context.Context, topic string) (int, error) {
	if a.pub == nil {
		return 0, ErrNoRepublisher
	}
	newest, err := a.store.List(ctx, domain.Filter{Topic: topic, Pending: true, Limit: 1})
	if err != nil || len(newest) == 0 {
		return 0, err
	}
	through := newest[0].ID
	replayed, after := 0, ""
	for {
		batch, err := a.store.Pending(ctx, topic, after, through, a.cfg.ReplayBatch)
		if err != nil {
			return replayed, err
		}
		for _, e := range batch {
			if _, err := a.replay(ctx, e); err != nil {
				a.log.ErrorContext(ctx, "replay of all dead letters stopped", "topic", topic, "replayed", replayed, "error", err)
				return replayed, err
			}
			replayed++
			after = e.ID
		}
		if len(batch) < a.cfg.ReplayBatch {
			break
		}
	}
	a.log.InfoContext(ctx, "dead letters replayed", "topic", topic, "replayed", replayed)
	return replayed, nil
}

// Purge deletes entry id (in any case), or returns domain.ErrNotFound.
func (a *Application) Purge(ctx context.Context, raw string) error {
	id, ok := canonicalID(raw)
	if !ok {
		return fmt.Errorf("%w: %q", domain.ErrNotFound, raw)
	}
	if err := a.store.Delete(ctx, id); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("%w: %s", domain.ErrNotFound, id)
		}
		return err
	}
	a.log.InfoContext(ctx, "dead letter purged", "entry_id", id)
	return nil
}

// PurgeOlderThan deletes every entry archived more than age ago, replayed or not, and returns
// how many it deleted. Each batch deleted is logged with its entry ids.
func (a *Application) PurgeOlderThan(ctx context.Context, age time.Duration) (int, error) {
	if age < 0 {
		return 0, fmt.Errorf("deadletter: age %s is negative", age)
	}
	cutoff := a.cfg.Now().Add(-age)
	total := 0
	for {
		ids, err := a.store.DeleteArchivedBefore(ctx, cutoff, a.cfg.PurgeBatch)
		if len(ids) > 0 {
			total += len(ids)
			a.log.InfoContext(ctx, "dead letters purged", "archived_before", cutoff, "entry_ids", ids)
		}
		if err != nil {
			return total, err
		}
		if len(ids) < a.cfg.PurgeBatch {
			return total, nil
		}
	}
}

// Depth counts the entries never replayed, per original topic.
func (a *Application) Depth(ctx context.Context) (map[string]int64, error) {
	return a.store.Depth(ctx)
}
