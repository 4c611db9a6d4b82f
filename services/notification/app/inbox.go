package app

import (
	"context"
	"errors"

	"github.com/piazza-social/piazza/services/notification/domain"
)

// ListNotifications asks for a page of UserID's inbox, newest first. Cursor is the NextCursor
// of the previous page ("" for the first); Limit 0 means domain.DefaultPageSize.
type ListNotifications struct {
	UserID string
	Cursor string
	Limit  int
}

// Page is one page of an inbox, newest first; NextCursor is "" on the last page.
type Page struct {
	Items      []domain.Notification
	NextCursor string
}

// ListSince asks for UserID's notifications after AfterSeq, oldest first (the gateway's replay
// and gap catch-up). Limit 0 means domain.MaxSince.
type ListSince struct {
	UserID   string
	AfterSeq int64
	Limit    int
}

// UnreadCount asks how many of UserID's notifications are above the read marker.
type UnreadCount struct {
	UserID string
}

// MarkRead moves UserID's read marker up to UpToSeq, clamped to the newest notification;
// the marker never moves backwards.
type MarkRead struct {
	UserID  string
	UpToSeq int64
}

func (s *service) listNotifications(ctx context.Context, q ListNotifications) (Page, error) {
	var bad []error
	if q.UserID == "" {
		bad = append(bad, field("user_id", domain.ErrUserIDRequired))
	}
	limit, err := domain.PageSize(q.Limit)
	if err != nil {
		bad = append(bad, field("limit", domain.ErrPageSizeInvalid))
	}
	cursor, err := domain.ParseCursor(q.Cursor)
	if err != nil {
		bad = append(bad, field("cursor", domain.ErrCursorInvalid))
	}
	if len(bad) > 0 {
		return Page{}, errors.Join(bad...)
	}
	p, err := s.store.List(ctx, q.UserID, cursor, limit)
	if err != nil {
		return Page{}, err
	}
	return Page{Items: p.Items, NextCursor: p.Next.Encode()}, nil
}

func (s *service) listSince(ctx context.Context, q ListSince) (domain.Since, error) {
	var bad []error
	if q.UserID == "" {
		bad = append(bad, field("user_id", domain.ErrUserIDRequired))
	}
	if q.AfterSeq < 0 {
		bad = append(bad, field("after_seq", domain.ErrSeqInvalid))
	}
	limit, err := domain.SinceLimit(q.Limit)
	if err != nil {
		bad = append(bad, field("limit", domain.ErrSinceLimitInvalid))
	}
	if len(bad) > 0 {
		return domain.Since{}, errors.Join(bad...)
	}
	return s.store.Since(ctx, q.UserID, q.AfterSeq, limit)
}

func (s *service) unreadCount(ctx context.Context, q UnreadCount) (domain.Unread, error) {
	if q.UserID == "" {
		return domain.Unread{}, field("user_id", domain.ErrUserIDRequired)
	}
	return s.store.Unread(ctx, q.UserID)
}

func (s *service) markRead(ctx context.Context, q MarkRead) (None, error) {
	var bad []error
	if q.UserID == "" {
		bad = append(bad, field("user_id", domain.ErrUserIDRequired))
	}
	upTo, err := domain.ReadMarker(q.UpToSeq)
	if err != nil {
		bad = append(bad, field("up_to_seq", domain.ErrSeqInvalid))
	}
	if len(bad) > 0 {
		return None{}, errors.Join(bad...)
	}
	_, err = s.store.MarkRead(ctx, q.UserID, upTo)
	return None{}, err
}
