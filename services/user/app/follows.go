package app

import (
	"context"
	"errors"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/user/domain"
)

// Follow makes the caller follow the account with Username.
type Follow struct {
	CallerID string
	Username string
}

// Unfollow ends the caller's follow of the account with Username.
type Unfollow struct {
	CallerID string
	Username string
}

// ListFollows asks for a page of an account's followers or followees. Cursor is the
// NextCursor of the previous page ("" for the first); Limit 0 means domain.DefaultPageSize.
type ListFollows struct {
	Username string
	Cursor   string
	Limit    int
}

// Page is one page of a follow list, newest follow first; NextCursor is "" on the last page.
// Emails are not included.
type Page struct {
	Users      []domain.User
	NextCursor string
}

// StreamFollowerIDs walks every follower of UserID in batches of BatchSize ids (0 means
// domain.DefaultFollowerBatch), each read by its own query, and hands each batch to Batch
// before reading the next. An error from Batch stops the walk and is returned.
type StreamFollowerIDs struct {
	UserID    string
	BatchSize int
	Batch     func(ids []string) error
}

// GetFollowedIDs asks for the ids of every account FollowerID follows (at most
// domain.MaxFollowing); an unknown account follows nobody.
type GetFollowedIDs struct {
	FollowerID string
}

// parties resolves the caller and the account named by username.
func (s *service) parties(ctx context.Context, callerID, username string) (caller, other domain.User, err error) {
	other, err = s.userByUsername(ctx, username)
	if err != nil {
		return domain.User{}, domain.User{}, err
	}
	caller, err = s.store.UserByID(ctx, callerID)
	if errors.Is(err, domain.ErrUserNotFound) {
		return domain.User{}, domain.User{}, domain.ErrCallerUnknown
	}
	if err != nil {
		return domain.User{}, domain.User{}, err
	}
	if caller.ID == other.ID {
		return domain.User{}, domain.User{}, field("username", domain.ErrFollowSelf)
	}
	return caller, other, nil
}

// follow is idempotent: following an account already followed changes nothing and emits
// nothing. Following yourself is validation_failed, an unknown account not_found, and a 5001st
// follow conflict.
func (s *service) follow(ctx context.Context, c Follow) (None, error) {
	follower, followee, err := s.parties(ctx, c.CallerID, c.Username)
	if err != nil {
		return None{}, err
	}
	ev, err := events.New(eventsv1.UserFollowed, follower.ID, Producer, eventsv1.UserFollowedPayload{
		FollowerID: follower.ID, FollowerUsername: follower.Username, FolloweeID: followee.ID,
	})
	if err != nil {
		return None{}, err
	}
	_, err = s.store.Follow(ctx, follower.ID, followee.ID, s.now(), domain.MaxFollowing, ev)
	return None{}, err
}

// unfollow is idempotent: unfollowing an account not followed changes nothing and emits
// nothing. An unknown account is not_found; yourself is validation_failed.
func (s *service) unfollow(ctx context.Context, c Unfollow) (None, error) {
	follower, followee, err := s.parties(ctx, c.CallerID, c.Username)
	if err != nil {
		return None{}, err
	}
	ev, err := events.New(eventsv1.UserUnfollowed, follower.ID, Producer, eventsv1.UserUnfollowedPayload{
		FollowerID: follower.ID, FolloweeID: followee.ID,
	})
	if err != nil {
		return None{}, err
	}
	_, err = s.store.Unfollow(ctx, follower.ID, followee.ID, ev)
	return None{}, err
}

type listFunc func(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error)

func (s *service) listFollowers(ctx context.Context, q ListFollows) (Page, error) {
	return s.list(ctx, q, s.store.ListFollowers)
}

func (s *service) listFollowing(ctx context.Context, q ListFollows) (Page, error) {
	return s.list(ctx, q, s.store.ListFollowing)
}

func (s *service) list(ctx context.Context, q ListFollows, list listFunc) (Page, error) {
	var bad []error
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
	owner, err := s.userByUsername(ctx, q.Username)
	if err != nil {
		return Page{}, err
	}
	p, err := list(ctx, owner.ID, cursor, limit)
	if err != nil {
		return Page{}, err
	}
	for i := range p.Users {
		p.Users[i].Email = ""
	}
	return Page{Users: p.Users, NextCursor: p.Next.Encode()}, nil
}

// streamFollowerIDs pages through the followers by id, one bounded query per batch, so a
// follower list of any size costs constant memory. Followers added or removed during the walk
// may or may not be seen; none present throughout is missed or repeated.
func (s *service) streamFollowerIDs(ctx context.Context, q StreamFollowerIDs) (None, error) {
	size, err := domain.FollowerBatchSize(q.BatchSize)
	if err != nil {
		return None{}, field("batch_size", domain.ErrBatchSizeInvalid)
	}
	if _, err := s.store.UserByID(ctx, q.UserID); err != nil {
		return None{}, err
	}
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return None{}, err
		}
		ids, err := s.store.FollowerIDs(ctx, q.UserID, after, size)
		if err != nil {
			return None{}, err
		}
		if len(ids) == 0 {
			return None{}, nil
		}
		if err := q.Batch(ids); err != nil {
			return None{}, err
		}
		if len(ids) < size {
			return None{}, nil
		}
		after = ids[len(ids)-1]
	}
}

func (s *service) getFollowedIDs(ctx context.Context, q GetFollowedIDs) ([]string, error) {
	return s.store.FollowedIDs(ctx, q.FollowerID)
}
