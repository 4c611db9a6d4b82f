package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/piazza-social/piazza/platform/presence"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// GetPresence asks whether a user is online and when they were last seen.
type GetPresence struct {
	UserID string
}

// Presence answers GetPresence. LastSeenAt is zero when the user was never seen.
type Presence struct {
	Online     bool
	LastSeenAt time.Time
}

// ListSessions asks for a page of a user's session history, newest first.
type ListSessions struct {
	UserID string
	Cursor string
	Limit  int // 0 means domain.DefaultPageSize
}

// Page is one page of a session history; NextCursor is "" on the last page.
type Page struct {
	Sessions   []domain.Session
	NextCursor string
}

func field(name string, err error) error { return &domain.FieldError{Field: name, Err: err} }

func eventSession(e domain.Event) domain.Session {
	return domain.Session{ConnectionID: e.ConnectionID, UserID: e.UserID, InstanceID: e.InstanceID}
}

// recordConnected records that a connection opened.
func (s *service) recordConnected(ctx context.Context, e domain.Event) (None, error) {
	if err := e.Validate(); err != nil {
		return None{}, err
	}
	ses := eventSession(e)
	ses.ConnectedAt = e.At.UTC().Truncate(time.Microsecond)
	return None{}, s.store.RecordConnected(ctx, ses)
}

// recordDisconnected records that a connection closed.
func (s *service) recordDisconnected(ctx context.Context, e domain.Event) (None, error) {
	if err := e.Validate(); err != nil {
		return None{}, err
	}
	ses := eventSession(e)
	ses.DisconnectedAt = e.At.UTC().Truncate(time.Microsecond)
	return None{}, s.store.RecordDisconnected(ctx, ses)
}

// getPresence answers from the live presence entries, and from the history for last seen.
func (s *service) getPresence(ctx context.Context, q GetPresence) (Presence, error) {
	if err := domain.CheckID("user_id", q.UserID); err != nil {
		return Presence{}, err
	}
	online, err := s.presence.Online(ctx, q.UserID)
	if err != nil {
		return Presence{}, fmt.Errorf("presence of %s: %w", q.UserID, err)
	}
	now := s.now()
	if online {
		return Presence{Online: true, LastSeenAt: now}, nil
	}
	a, err := s.store.Activity(ctx, q.UserID)
	if err != nil {
		return Presence{}, err
	}
	return Presence{LastSeenAt: domain.LastSeen(false, now, a, s.cfg.PresenceTTL)}, nil
}

func (s *service) listSessions(ctx context.Context, q ListSessions) (Page, error) {
	var bad []error
	if err := domain.CheckID("user_id", q.UserID); err != nil {
		bad = append(bad, err)
	}
	limit, err := domain.PageSize(q.Limit)
	if err != nil {
		bad = append(bad, field("limit", err))
	}
	cursor, err := domain.ParseCursor(q.Cursor)
	if err != nil {
		bad = append(bad, field("cursor", err))
	}
	if len(bad) > 0 {
		return Page{}, errors.Join(bad...)
	}
	p, err := s.store.ListSessions(ctx, q.UserID, cursor, limit)
	if err != nil {
		return Page{}, err
	}
	return Page{Sessions: p.Sessions, NextCursor: p.Next.Encode()}, nil
}

// closeEndedSessions closes the open sessions (older than SweepGrace) whose connection is no
// longer live: their gateway crashed, or their disconnect event is late (it will replace the
// estimate when it comes). Each ends at domain.EstimatedEnd. It walks every open session in
// batches of SweepBatch, one presence round trip and one transaction per batch. Several
// instances of the service may sweep at once: the writes are idempotent.
func (s *service) closeEndedSessions(ctx context.Context, _ None) (int64, error) {
	now := s.now()
	startedBy := now.Add(-s.cfg.SweepGrace)
	var (
		closed int64
		after  string
	)
	for {
		open, err := s.store.OpenSessions(ctx, startedBy, after, s.cfg.SweepBatch)
		if err != nil {
			return closed, err
		}
		if len(open) == 0 {
			return closed, nil
		}
		conns := make([]presence.Connection, len(open))
		for i, ses := range open {
			conns[i] = presence.Connection{UserID: ses.UserID, ConnectionID: ses.ConnectionID, InstanceID: ses.InstanceID}
		}
		live, err := s.presence.Live(ctx, conns)
		if err != nil {
			return closed, fmt.Errorf("liveness of %d connections: %w", len(conns), err)
		}
		var ends []domain.End
		for i, ses := range open {
			if !live[i] {
				ends = append(ends, domain.End{ConnectionID: ses.ConnectionID, At: domain.EstimatedEnd(ses.ConnectedAt, now, s.cfg.PresenceTTL)})
			}
		}
		n, err := s.store.CloseSessions(ctx, ends)
		closed += n
		if err != nil {
			return closed, err
		}
		if len(open) < s.cfg.SweepBatch {
			return closed, nil
		}
		after = open[len(open)-1].ConnectionID
	}
}

// purgeHistory deletes the sessions that ended more than Retention ago, PurgeBatch at a time.
func (s *service) purgeHistory(ctx context.Context, _ None) (int64, error) {
	if s.cfg.Retention < 0 {
		return 0, nil
	}
	cutoff := s.now().Add(-s.cfg.Retention)
	var total int64
	for {
		n, err := s.store.PurgeEnded(ctx, cutoff, s.cfg.PurgeBatch)
		total += n
		if err != nil || n < int64(s.cfg.PurgeBatch) {
			if total > 0 {
				s.log.InfoContext(ctx, "purged old sessions", slog.Int64("rows", total))
			}
			return total, err
		}
	}
}
