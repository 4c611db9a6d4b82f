// Package adapters holds user-service's adapters: the SQL store of accounts, sessions, refresh
// tokens and the follow graph (one code path for PostgreSQL and SQLite, on platform/database,
// with its embedded migration set "user"), and the argon2id password hasher.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/user/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the store: users, sessions, refresh_tokens and follows. Apply it
// with database.Migrate before using a Store. The outbox the store writes events through has
// its own migrations, applied to the same database.
var Migrations = database.MigrationSet{Name: "user", FS: migrationFiles, Dir: "migrations"}

// EventOutbox records events in the caller's transaction, to be published after it commits.
// platform/events/outbox's *Outbox satisfies it.
type EventOutbox interface {
	// Add stores envs for topic inside tx; they are published if and only if tx commits.
	Add(ctx context.Context, tx *sql.Tx, topic string, envs ...events.Envelope) error
	// Kick tells the forwarder that events have committed, so it publishes them now rather
	// than at its next poll. It must not block.
	Kick()
}

// Store keeps user-service's state in a relational database. Every state change that emits an
// event writes the event through the outbox in the same transaction, on topic
// eventsv1.TopicUsers, and only when the state actually changed; the outbox is kicked after
// the commit. The aggregate's row (the user, or the follower) is written before its event, so
// that its row lock orders the events of one aggregate. It is safe for concurrent use.
type Store struct {
	db     *database.DB
	outbox EventOutbox
}

// NewStore returns a store on db, which must have Migrations applied (and the outbox's).
func NewStore(db *database.DB, outbox EventOutbox) *Store {
	return &Store{db: db, outbox: outbox}
}

// kick wakes the outbox's forwarder after a commit that recorded evs.
func (s *Store) kick(evs []events.Envelope) {
	if len(evs) > 0 {
		s.outbox.Kick()
	}
}

func (s *Store) addEvents(ctx context.Context, tx *sql.Tx, evs []events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	if err := s.outbox.Add(ctx, tx, eventsv1.TopicUsers, evs...); err != nil {
		return fmt.Errorf("user store: outbox: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------------- accounts

const userColumns = `id, username, email, display_name, bio, followers_count, following_count, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(row scanner, extra ...any) (domain.User, error) {
	var u domain.User
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.Bio, &u.FollowersCount, &u.FollowingCount, &u.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return domain.User{}, err
	}
	return u, nil
}

// CreateUser creates the account u (u.ID, Username, Email and CreatedAt set; counts zero) with
// its first session and refresh token, and records evs, all in one transaction. A taken
// username or email is reported as *domain.FieldError(s) wrapping ErrUsernameTaken /
// ErrEmailTaken (both when both are taken).
func (s *Store) CreateUser(ctx context.Context, u domain.User, passwordHash string, sess domain.Session, tok domain.RefreshToken, evs ...events.Envelope) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO users
			(id, username, email, password_hash, display_name, bio, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
			u.ID, u.Username, u.Email, passwordHash, u.DisplayName, u.Bio, u.CreatedAt); err != nil {
			return err
		}
		if err := insertSession(ctx, tx, sess, tok); err != nil {
			return err
		}
		return s.addEvents(ctx, tx, evs)
	})
	if err == nil {
		s.kick(evs)
		return nil
	}
	if database.IsUniqueViolation(err) {
		if taken := s.takenFields(ctx, u.Username, u.Email); taken != nil {
			return taken
		}
	}
	return fmt.Errorf("user store: create user: %w", err)
}

// takenFields says which of username and email an existing account holds, nil if neither.
func (s *Store) takenFields(ctx context.Context, username, email string) error {
	rows, err := s.db.SQL().QueryContext(ctx,
		`SELECT username, email FROM users WHERE username = $1 OR email = $2`, username, email)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var userTaken, emailTaken bool
	for rows.Next() {
		var un, em string
		if rows.Scan(&un, &em) != nil {
			return nil
		}
		userTaken = userTaken || un == username
		emailTaken = emailTaken || em == email
	}
	var errs []error
	if userTaken {
		errs = append(errs, &domain.FieldError{Field: "username", Err: domain.ErrUsernameTaken})
	}
	if emailTaken {
		errs = append(errs, &domain.FieldError{Field: "email", Err: domain.ErrEmailTaken})
	}
	return errors.Join(errs...)
}

// UserByID returns the account with id, or domain.ErrUserNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (domain.User, error) {
	if !domain.ValidID(id) {
		return domain.User{}, domain.ErrUserNotFound
	}
	return s.oneUser(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id)
}

// UserByUsername returns the account with the normalised username, or domain.ErrUserNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (domain.User, error) {
	return s.oneUser(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username)
}

func (s *Store) oneUser(ctx context.Context, query string, arg any) (domain.User, error) {
	u, err := scanUser(s.db.SQL().QueryRowContext(ctx, query, arg))
	switch {
	case database.IsNoRows(err):
		return domain.User{}, domain.ErrUserNotFound
	case err != nil:
		return domain.User{}, fmt.Errorf("user store: read user: %w", err)
	}
	return u, nil
}

// CredentialsByUsername returns the account with the normalised username and its password
// hash, or domain.ErrUserNotFound.
func (s *Store) CredentialsByUsername(ctx context.Context, username string) (domain.User, string, error) {
	return s.credentials(ctx, `username`, username)
}

// CredentialsByEmail returns the account with the normalised email and its password hash, or
// domain.ErrUserNotFound.
func (s *Store) CredentialsByEmail(ctx context.Context, email string) (domain.User, string, error) {
	return s.credentials(ctx, `email`, email)
}

func (s *Store) credentials(ctx context.Context, column, value string) (domain.User, string, error) {
	var hash string
	u, err := scanUser(s.db.SQL().QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE `+column+` = $1`, value), &hash)
	switch {
	case database.IsNoRows(err):
		return domain.User{}, "", domain.ErrUserNotFound
	case err != nil:
		return domain.User{}, "", fmt.Errorf("user store: read credentials: %w", err)
	}
	return u, hash, nil
}

// UsersByIDs returns the accounts among ids that exist, in no particular order; ids that are
// not user ids are ignored, and so are repeats.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]domain.User, error) {
	seen := make(map[string]bool, len(ids))
	args := make([]any, 0, len(ids))
	var ph strings.Builder
	for _, id := range ids {
		if seen[id] || !domain.ValidID(id) {
			continue
		}
		seen[id] = true
		args = append(args, id)
		if len(args) > 1 {
			ph.WriteString(", ")
		}
		ph.WriteString("$" + strconv.Itoa(len(args)))
	}
	if len(args) == 0 {
		return nil, nil
	}
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE id IN (`+ph.String()+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("user store: read users: %w", err)
	}
	defer rows.Close()
	out := make([]domain.User, 0, len(args))
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("user store: read users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user store: read users: %w", err)
	}
	return out, nil
}

// UpdateProfile applies p to the account id and returns the account as it is afterwards, or
// domain.ErrUserNotFound.
func (s *Store) UpdateProfile(ctx context.Context, id string, p domain.ProfileUpdate, now time.Time) (domain.User, error) {
	if p.Empty() {
		return s.UserByID(ctx, id)
	}
	if !domain.ValidID(id) {
		return domain.User{}, domain.ErrUserNotFound
	}
	u, err := scanUser(s.db.SQL().QueryRowContext(ctx, `UPDATE users
		SET display_name = COALESCE($2, display_name), bio = COALESCE($3, bio), updated_at = $4
		WHERE id = $1 RETURNING `+userColumns, id, p.DisplayName, p.Bio, now))
	switch {
	case database.IsNoRows(err):
		return domain.User{}, domain.ErrUserNotFound
	case err != nil:
		return domain.User{}, fmt.Errorf("user store: update profile: %w", err)
	}
	return u, nil
}

// ---------------------------------------------------------------------------------- sessions

func insertSession(ctx context.Context, tx *sql.Tx, sess domain.Session, tok domain.RefreshToken) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		sess.ID, sess.UserID, sess.CreatedAt, sess.ExpiresAt); err != nil {
		return err
	}
	return insertRefreshToken(ctx, tx, tok)
}

func insertRefreshToken(ctx context.Context, tx *sql.Tx, tok domain.RefreshToken) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		tok.Hash, tok.SessionID, tok.CreatedAt, tok.ExpiresAt)
	return err
}

// CreateSession records a new session of an existing account with its first refresh token
// (tok.SessionID must be sess.ID); domain.ErrUserNotFound if the account does not exist.
func (s *Store) CreateSession(ctx context.Context, sess domain.Session, tok domain.RefreshToken) error {
	if !domain.ValidID(sess.UserID) {
		return domain.ErrUserNotFound
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error { return insertSession(ctx, tx, sess, tok) })
	switch {
	case database.IsForeignKeyViolation(err):
		return domain.ErrUserNotFound
	case err != nil:
		return fmt.Errorf("user store: create session: %w", err)
	}
	return nil
}

// Session returns the session id, or domain.ErrSessionNotFound.
func (s *Store) Session(ctx context.Context, id string) (domain.Session, error) {
	if !domain.ValidID(id) {
		return domain.Session{}, domain.ErrSessionNotFound
	}
	sess := domain.Session{ID: id}
	var revoked sql.NullTime
	err := s.db.SQL().QueryRowContext(ctx,
		`SELECT user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1`, id).
		Scan(&sess.UserID, &sess.CreatedAt, &sess.ExpiresAt, &revoked)
	switch {
	case database.IsNoRows(err):
		return domain.Session{}, domain.ErrSessionNotFound
	case err != nil:
		return domain.Session{}, fmt.Errorf("user store: read session: %w", err)
	}
	sess.RevokedAt = revoked.Time
	return sess, nil
}

// RotateRefreshToken spends the refresh token whose hash is oldHash and, in the same
// transaction, stores newHash as its successor in the same session, valid until expiresAt,
// which also becomes the session's expiry. It returns the session. It fails with
//   - domain.ErrRefreshTokenInvalid when no token has oldHash;
//   - domain.ErrRefreshTokenReused when the token was already spent, after revoking its
//     session (the revocation is committed although an error is returned, and the revoked
//     session is returned with the error);
//   - domain.ErrRefreshTokenExpired when the token expired;
//   - domain.ErrSessionRevoked / ErrSessionExpired when its session ended.
//
// Of concurrent rotations of one token exactly one succeeds: the spend is a conditional
// UPDATE (used_at IS NULL), and the losers see a reuse, which revokes the session.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, newHash []byte, now, expiresAt time.Time) (domain.Session, error) {
	var (
		sess    domain.Session
		outcome error
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var (
			tokExpires     time.Time
			used, revoked  sql.NullTime
			sessionExpires time.Time
		)
		err := tx.QueryRowContext(ctx, `SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.created_at, s.expires_at, s.revoked_at
			FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1`, oldHash).
			Scan(&sess.ID, &tokExpires, &used, &sess.UserID, &sess.CreatedAt, &sessionExpires, &revoked)
		switch {
		case database.IsNoRows(err):
			outcome = domain.ErrRefreshTokenInvalid
			return nil
		case err != nil:
			return err
		}
		sess.ExpiresAt, sess.RevokedAt = sessionExpires, revoked.Time
		if used.Valid {
			outcome = domain.ErrRefreshTokenReused
			return revokeSession(ctx, tx, sess.ID, now)
		}
		if !now.Before(tokExpires) {
			outcome = domain.ErrRefreshTokenExpired
			return nil
		}
		if outcome = sess.Check(now); outcome != nil {
			return nil
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL`, oldHash, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// Spent by a concurrent rotation since we read it: a reuse like any other.
			outcome = domain.ErrRefreshTokenReused
			return revokeSession(ctx, tx, sess.ID, now)
		}
		if err := insertRefreshToken(ctx, tx, domain.RefreshToken{Hash: newHash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: expiresAt}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET expires_at = $2 WHERE id = $1`, sess.ID, expiresAt); err != nil {
			return err
		}
		sess.ExpiresAt = expiresAt
		return nil
	})
	switch {
	case err != nil:
		return domain.Session{}, fmt.Errorf("user store: rotate refresh token: %w", err)
	case errors.Is(outcome, domain.ErrRefreshTokenReused):
		return sess, outcome // the caller learns which session was revoked
	case outcome != nil:
		return domain.Session{}, outcome
	}
	return sess, nil
}

func revokeSession(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, now)
	return err
}

// RevokeSessionByToken revokes the session the refresh token with hash belongs to, whether or
// not the token was spent. It is idempotent: a revoked session keeps its first revocation
// time, and an unknown hash is not an error.
func (s *Store) RevokeSessionByToken(ctx context.Context, hash []byte, now time.Time) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = $2
			WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $1) AND revoked_at IS NULL`, hash, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("user store: revoke session: %w", err)
	}
	return nil
}

// PurgeExpired deletes the sessions and refresh tokens that expired before cutoff, at most
// batch rows per statement, and returns how many rows it deleted. A purged token that is
// presented again is unknown rather than reused; since it had expired, it could not be used
// either way.
func (s *Store) PurgeExpired(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)`,
		// Tokens of these sessions go with them (ON DELETE CASCADE).
		`DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2)`,
	} {
		for {
			var n int64
			err := s.db.InTx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, q, cutoff, batch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, fmt.Errorf("user store: purge expired: %w", err)
			}
			total += n
			if n < int64(batch) {
				break
			}
		}
	}
	return total, nil
}

// ---------------------------------------------------------------------------------- follows

// Follow makes followerID follow followeeID as of now. It reports whether the follow is new;
// only then are the two accounts' counters incremented and evs recorded, all in one
// transaction, so repeating a follow changes nothing. It fails with domain.ErrFollowSelf,
// domain.ErrUserNotFound when either account does not exist, and
// domain.ErrFollowLimitReached when the follower already follows limit accounts.
func (s *Store) Follow(ctx context.Context, followerID, followeeID string, now time.Time, limit int, evs ...events.Envelope) (bool, error) {
	if followerID == followeeID {
		return false, domain.ErrFollowSelf
	}
	if !domain.ValidID(followerID) || !domain.ValidID(followeeID) {
		return false, domain.ErrUserNotFound
	}
	created := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO follows (follower_id, followee_id, created_at)
			VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, followerID, followeeID, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := s.adjustCounts(ctx, tx, followerID, followeeID, +1, limit); err != nil {
			return err
		}
		created = true
		return s.addEvents(ctx, tx, evs)
	})
	switch {
	case errors.Is(err, domain.ErrFollowLimitReached):
		return false, err
	case database.IsForeignKeyViolation(err):
		return false, domain.ErrUserNotFound
	case err != nil:
		return false, fmt.Errorf("user store: follow: %w", err)
	}
	if created {
		s.kick(evs)
	}
	return created, nil
}

// Unfollow ends followerID's follow of followeeID. It reports whether there was one; only
// then are the counters decremented and evs recorded, in one transaction.
func (s *Store) Unfollow(ctx context.Context, followerID, followeeID string, evs ...events.Envelope) (bool, error) {
	if !domain.ValidID(followerID) || !domain.ValidID(followeeID) {
		return false, nil
	}
	removed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2`, followerID, followeeID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := s.adjustCounts(ctx, tx, followerID, followeeID, -1, 0); err != nil {
			return err
		}
		removed = true
		return s.addEvents(ctx, tx, evs)
	})
	if err != nil {
		return false, fmt.Errorf("user store: unfollow: %w", err)
	}
	if removed {
		s.kick(evs)
	}
	return removed, nil
}

// adjustCounts moves the follower's following_count and the followee's followers_count by
// delta. With delta +1 and limit > 0, the follower's count must stay at or below limit
// (ErrFollowLimitReached otherwise); the check is in the UPDATE itself, so concurrent follows
// cannot overshoot it. The rows are updated in id order, so that A following B while B follows
// A cannot deadlock.
func (s *Store) adjustCounts(ctx context.Context, tx *sql.Tx, followerID, followeeID string, delta, limit int) error {
	follower := func() error {
		q, args := `UPDATE users SET following_count = following_count + $2 WHERE id = $1`, []any{followerID, delta}
		if delta > 0 && limit > 0 {
			q, args = q+` AND following_count < $3`, append(args, limit)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return domain.ErrFollowLimitReached
		}
		return nil
	}
	followee := func() error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET followers_count = followers_count + $2 WHERE id = $1`, followeeID, delta)
		return err
	}
	first, second := follower, followee
	if followeeID < followerID {
		first, second = followee, follower
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// ListFollowers returns a page of the accounts following userID, newest follow first, after
// the cursor (zero: from the start), at most limit of them.
func (s *Store) ListFollowers(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error) {
	return s.listFollows(ctx, "followee_id", "follower_id", userID, after, limit)
}

// ListFollowing returns a page of the accounts userID follows, newest follow first.
func (s *Store) ListFollowing(ctx context.Context, userID string, after domain.Cursor, limit int) (domain.FollowPage, error) {
	return s.listFollows(ctx, "follower_id", "followee_id", userID, after, limit)
}

// listFollows pages through follows WHERE key = userID, listing the accounts in column other,
// by keyset pagination on (created_at, other) descending: each page is one index range scan,
// however deep the client has paged.
func (s *Store) listFollows(ctx context.Context, key, other, userID string, after domain.Cursor, limit int) (domain.FollowPage, error) {
	if !domain.ValidID(userID) {
		return domain.FollowPage{}, nil
	}
	q := `SELECT u.` + strings.ReplaceAll(userColumns, ", ", ", u.") + `, f.created_at
		FROM follows f JOIN users u ON u.id = f.` + other + `
		WHERE f.` + key + ` = $1`
	// One more row than asked tells whether a next page exists.
	args := []any{userID, limit + 1}
	if !after.IsZero() {
		q += ` AND (f.created_at, f.` + other + `) < ($3, $4)`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY f.created_at DESC, f.` + other + ` DESC LIMIT $2`

	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return domain.FollowPage{}, fmt.Errorf("user store: list follows: %w", err)
	}
	defer rows.Close()
	var (
		page domain.FollowPage
		ats  []time.Time
	)
	for rows.Next() {
		var at time.Time
		u, err := scanUser(rows, &at)
		if err != nil {
			return domain.FollowPage{}, fmt.Errorf("user store: list follows: %w", err)
		}
		page.Users = append(page.Users, u)
		ats = append(ats, at)
	}
	if err := rows.Err(); err != nil {
		return domain.FollowPage{}, fmt.Errorf("user store: list follows: %w", err)
	}
	if len(page.Users) > limit {
		page.Users = page.Users[:limit]
		page.Next = domain.Cursor{At: ats[limit-1], ID: page.Users[limit-1].ID}
	}
	return page, nil
}

// FollowerIDs returns up to limit ids of accounts following userID, in id order, starting
// after the id after ("" for the first batch). Callers page through every follower with
// repeated calls, each an index range scan.
func (s *Store) FollowerIDs(ctx context.Context, userID, after string, limit int) ([]string, error) {
	if !domain.ValidID(userID) {
		return nil, nil
	}
	q, args := `SELECT follower_id FROM follows WHERE followee_id = $1 ORDER BY follower_id LIMIT $2`, []any{userID, limit}
	if after != "" {
		if !domain.ValidID(after) {
			return nil, domain.ErrCursorInvalid
		}
		q = `SELECT follower_id FROM follows WHERE followee_id = $1 AND follower_id > $3 ORDER BY follower_id LIMIT $2`
		args = append(args, after)
	}
	return s.ids(ctx, q, args...)
}

// FollowedIDs returns the ids of every account followerID follows (at most the follow limit),
// in id order.
func (s *Store) FollowedIDs(ctx context.Context, followerID string) ([]string, error) {
	if !domain.ValidID(followerID) {
		return nil, nil
	}
	return s.ids(ctx, `SELECT followee_id FROM follows WHERE follower_id = $1 ORDER BY followee_id`, followerID)
}

func (s *Store) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("user store: read follow ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("user store: read follow ids: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user store: read follow ids: %w", err)
	}
	return out, nil
}
