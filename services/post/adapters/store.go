// Package adapters holds post-service's adapters: the SQL store of posts, likes and comments
// (one code path for PostgreSQL and SQLite, on platform/database, with its embedded migration
// set "post"), and the follow graph read from user-service over gRPC.
package adapters

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/post/domain"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the store: posts, likes and comments. Apply it with
// database.Migrate before using a Store. The outbox the store writes events through has its
// own migrations, applied to the same database.
var Migrations = database.MigrationSet{Name: "post", FS: migrationFiles, Dir: "migrations"}

// EventOutbox records events in the caller's transaction, to be published after it commits.
// platform/events/outbox's *Outbox satisfies it.
type EventOutbox interface {
	// Add stores envs for topic inside tx; they are published if and only if tx commits.
	Add(ctx context.Context, tx *sql.Tx, topic string, envs ...events.Envelope) error
	// Kick tells the forwarder that events have committed, so it publishes them now rather
	// than at its next poll. It must not block.
	Kick()
}

// Store keeps post-service's state in a relational database. Every state change that emits
// an event writes the event through the outbox in the same transaction, on topic
// eventsv1.TopicPosts, and only when the state actually changed; the outbox is kicked after
// the commit. The post's row is written before the event, so its row lock orders the events
// about one post (a like's event cannot overtake the post's deletion). A malformed post or
// author id names nothing: it is answered like an unknown one, without a query (PostgreSQL
// would reject it as a malformed UUID). It is safe for concurrent use.
type Store struct {
	db     *database.DB
	outbox EventOutbox
}

// NewStore returns a store on db, which must have Migrations applied (and the outbox's).
func NewStore(db *database.DB, outbox EventOutbox) *Store {
	return &Store{db: db, outbox: outbox}
}

// inTxWithEvents runs fn in a transaction; fn reports whether it changed anything, and only
// then are evs recorded (in the transaction) and the outbox kicked (after the commit).
func (s *Store) inTxWithEvents(ctx context.Context, evs []events.Envelope, fn func(tx *sql.Tx) (bool, error)) (bool, error) {
	changed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if changed, err = fn(tx); err != nil || !changed || len(evs) == 0 {
			return err
		}
		if err := s.outbox.Add(ctx, tx, eventsv1.TopicPosts, evs...); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if changed && len(evs) > 0 {
		s.outbox.Kick()
	}
	return changed, nil
}

// rowsAffected is the number of rows res changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// idIn returns the SQL condition "column is one of ids" with ids bound as the query's
// parameter $n, and that parameter's value. It is one bound parameter whatever the number of
// ids (an account follows up to 5000 authors), so the statement text is the same for every
// call and no engine's limit on parameters is ever reached:
//   - PostgreSQL: column = ANY($n::uuid[]) with a text array, which the planner turns into
//     one index search per element;
//   - SQLite: column IN (SELECT value FROM json_each($n)) with a JSON array, which SQLite
//     materialises once and probes the index with, element by element.
func (s *Store) idIn(column string, n int, ids []string) (string, any, error) {
	p := "$" + strconv.Itoa(n)
	if s.db.Dialect() == database.Postgres {
		return column + ` = ANY(` + p + `::uuid[])`, ids, nil
	}
	arr, err := json.Marshal(ids)
	if err != nil {
		return "", nil, err
	}
	return column + ` IN (SELECT value FROM json_each(` + p + `))`, string(arr), nil
}

// validIDs returns the ids that are well-formed, without repeats, in their first order.
func validIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] && domain.ValidID(id) {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------- posts

const postColumns = `id, author_id, text, created_at, like_count, comment_count`

// likedBy is the column that follows postColumns in a read for a viewer: whether the viewer,
// bound as parameter $n, likes the post. It is a lookup on the likes' primary key per post
// read, inside the statement that reads the posts, so a page costs one round trip to the
// database, not one for the posts and one for the viewer's likes.
func likedBy(n int) string {
	return `, EXISTS (SELECT 1 FROM likes WHERE likes.post_id = posts.id AND likes.user_id = $` + strconv.Itoa(n) + `)`
}

// viewerArg is the value bound for likedBy's parameter: the viewer's id, or NULL for no viewer
// or a malformed one, which likes nothing (PostgreSQL would reject a malformed UUID).
func viewerArg(viewerID string) any {
	if !domain.ValidID(viewerID) {
		return nil
	}
	return viewerID
}

type scanner interface{ Scan(dest ...any) error }

// scanPost scans a row of postColumns and likedBy.
func scanPost(row scanner) (domain.Post, error) {
	var p domain.Post
	err := row.Scan(&p.ID, &p.AuthorID, &p.Text, &p.CreatedAt, &p.LikeCount, &p.CommentCount, &p.LikedByMe)
	return p, err
}

// CreatePost stores the new post p (ID, AuthorID, Text and CreatedAt set; counts zero) and
// records evs, in one transaction.
func (s *Store) CreatePost(ctx context.Context, p domain.Post, evs ...events.Envelope) error {
	_, err := s.inTxWithEvents(ctx, evs, func(tx *sql.Tx) (bool, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO posts (id, author_id, text, created_at) VALUES ($1, $2, $3, $4)`,
			p.ID, p.AuthorID, p.Text, p.CreatedAt)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("post store: create post: %w", err)
	}
	return nil
}

// Post returns the post id as viewerID sees it (LikedByMe; viewerID may be empty), or
// domain.ErrPostNotFound.
func (s *Store) Post(ctx context.Context, id, viewerID string) (domain.Post, error) {
	if !domain.ValidID(id) {
		return domain.Post{}, domain.ErrPostNotFound
	}
	p, err := scanPost(s.db.SQL().QueryRowContext(ctx, `SELECT `+postColumns+likedBy(2)+` FROM posts WHERE id = $1`, id, viewerArg(viewerID)))
	switch {
	case database.IsNoRows(err):
		return domain.Post{}, domain.ErrPostNotFound
	case err != nil:
		return domain.Post{}, fmt.Errorf("post store: read post: %w", err)
	}
	return p, nil
}

// DeletePost deletes the post id if authorID wrote it, with its likes and comments (the
// foreign keys cascade), and records evs, in one transaction. It fails with
// domain.ErrPostNotFound when there is no such post (also when it was deleted already) and
// domain.ErrNotAuthor when someone else wrote it; the check is the DELETE's own condition, so
// it holds against concurrent changes.
func (s *Store) DeletePost(ctx context.Context, id, authorID string, evs ...events.Envelope) error {
	if !domain.ValidID(id) {
		return domain.ErrPostNotFound
	}
	var refused error
	_, err := s.inTxWithEvents(ctx, evs, func(tx *sql.Tx) (bool, error) {
		if domain.ValidID(authorID) { // else nobody's, so certainly not this post's author
			n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM posts WHERE id = $1 AND author_id = $2`, id, authorID))
			if err != nil || n > 0 {
				return n > 0, err
			}
		}
		var p domain.Post
		switch err := tx.QueryRowContext(ctx, `SELECT author_id FROM posts WHERE id = $1`, id).Scan(&p.AuthorID); {
		case database.IsNoRows(err):
			refused = domain.ErrPostNotFound
		case err != nil:
			return false, err
		default:
			refused = p.CheckDelete(authorID)
		}
		return false, nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("post store: delete post: %w", err)
	case refused != nil:
		return refused
	}
	return nil
}

// ---------------------------------------------------------------------------------- likes

// Like records that userID likes the post postID as of at. It reports whether the like is
// new; only then is the post's like_count incremented and evs recorded, in one transaction,
// so repeating a like changes nothing and emits nothing. domain.ErrPostNotFound when the post
// does not exist (or is deleted concurrently), domain.ErrIDInvalid when userID is malformed.
func (s *Store) Like(ctx context.Context, postID, userID string, at time.Time, evs ...events.Envelope) (bool, error) {
	if !domain.ValidID(postID) {
		return false, domain.ErrPostNotFound
	}
	if !domain.ValidID(userID) {
		return false, domain.ErrIDInvalid
	}
	added, err := s.inTxWithEvents(ctx, evs, func(tx *sql.Tx) (bool, error) {
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO likes (post_id, user_id, created_at)
			VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, postID, userID, at))
		if err != nil || n == 0 {
			return false, err
		}
		return true, bumpCount(ctx, tx, "like_count", postID, +1)
	})
	switch {
	case database.IsForeignKeyViolation(err):
		return false, domain.ErrPostNotFound
	case err != nil:
		return false, fmt.Errorf("post store: like: %w", err)
	}
	return added, nil
}

// Unlike removes userID's like of the post postID. It reports whether there was one; only
// then is like_count decremented, in the same transaction. domain.ErrPostNotFound when the
// post does not exist, domain.ErrIDInvalid when userID is malformed. Unliking emits no event.
func (s *Store) Unlike(ctx context.Context, postID, userID string) (bool, error) {
	if !domain.ValidID(postID) {
		return false, domain.ErrPostNotFound
	}
	if !domain.ValidID(userID) {
		return false, domain.ErrIDInvalid
	}
	missing := false
	removed, err := s.inTxWithEvents(ctx, nil, func(tx *sql.Tx) (bool, error) {
		n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM likes WHERE post_id = $1 AND user_id = $2`, postID, userID))
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, bumpCount(ctx, tx, "like_count", postID, -1)
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM posts WHERE id = $1`, postID).Scan(&one)
		if database.IsNoRows(err) {
			missing, err = true, nil
		}
		return false, err
	})
	switch {
	case err != nil:
		return false, fmt.Errorf("post store: unlike: %w", err)
	case missing:
		return false, domain.ErrPostNotFound
	}
	return removed, nil
}

// bumpCount moves a post's counter column by delta. The counter moves only with the row it
// counts, in the same transaction, and the UPDATE reads the committed value under the row
// lock, so concurrent likes never lose an increment.
func bumpCount(ctx context.Context, tx *sql.Tx, column, postID string, delta int) error {
	n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE posts SET `+column+` = `+column+` + $2 WHERE id = $1`, postID, delta))
	if err == nil && n == 0 {
		return domain.ErrPostNotFound
	}
	return err
}

// ---------------------------------------------------------------------------------- comments

// AddComment stores the comment c (all fields set) on its post, increments the post's
// comment_count and records evs, in one transaction. domain.ErrPostNotFound when the post does
// not exist (or is deleted concurrently).
func (s *Store) AddComment(ctx context.Context, c domain.Comment, evs ...events.Envelope) error {
	if !domain.ValidID(c.PostID) {
		return domain.ErrPostNotFound
	}
	_, err := s.inTxWithEvents(ctx, evs, func(tx *sql.Tx) (bool, error) {
		// The post's row first: its lock orders this comment's event after any earlier
		// event about the post, and a deleted post fails here before anything is written.
		if err := bumpCount(ctx, tx, "comment_count", c.PostID, +1); err != nil {
			return false, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO comments (id, post_id, author_id, text, created_at)
			VALUES ($1, $2, $3, $4, $5)`, c.ID, c.PostID, c.AuthorID, c.Text, c.CreatedAt)
		return err == nil, err
	})
	switch {
	case errors.Is(err, domain.ErrPostNotFound) || database.IsForeignKeyViolation(err):
		return domain.ErrPostNotFound
	case err != nil:
		return fmt.Errorf("post store: add comment: %w", err)
	}
	return nil
}

// ListComments returns a page of the comments on postID, oldest first, after the cursor
// (zero: from the start), at most limit of them. domain.ErrPostNotFound when the post does
// not exist.
func (s *Store) ListComments(ctx context.Context, postID string, after domain.Cursor, limit int) (domain.CommentPage, error) {
	if !domain.ValidID(postID) {
		return domain.CommentPage{}, domain.ErrPostNotFound
	}
	var one int
	switch err := s.db.SQL().QueryRowContext(ctx, `SELECT 1 FROM posts WHERE id = $1`, postID).Scan(&one); {
	case database.IsNoRows(err):
		return domain.CommentPage{}, domain.ErrPostNotFound
	case err != nil:
		return domain.CommentPage{}, fmt.Errorf("post store: list comments: %w", err)
	}
	q := `SELECT id, post_id, author_id, text, created_at FROM comments WHERE post_id = $1`
	// One more row than asked tells whether a next page exists.
	args := []any{postID, limit + 1}
	if !after.IsZero() {
		q += ` AND (created_at, id) > ($3, $4)`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY created_at, id LIMIT $2`
	rows, err := s.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return domain.CommentPage{}, fmt.Errorf("post store: list comments: %w", err)
	}
	defer rows.Close()
	var page domain.CommentPage
	for rows.Next() {
		var c domain.Comment
		if err := rows.Scan(&c.ID, &c.PostID, &c.AuthorID, &c.Text, &c.CreatedAt); err != nil {
			return domain.CommentPage{}, fmt.Errorf("post store: list comments: %w", err)
		}
		page.Comments = append(page.Comments, c)
	}
	if err := rows.Err(); err != nil {
		return domain.CommentPage{}, fmt.Errorf("post store: list comments: %w", err)
	}
	if len(page.Comments) > limit {
		page.Comments = page.Comments[:limit]
		last := page.Comments[limit-1]
		page.Next = domain.Cursor{At: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}

// ---------------------------------------------------------------------------------- timelines

// ListUserPosts returns a page of authorID's posts, newest first, after the cursor (zero:
// from the start), at most limit of them, as viewerID sees them (LikedByMe). An unknown author
// has no posts.
func (s *Store) ListUserPosts(ctx context.Context, authorID, viewerID string, after domain.Cursor, limit int) (domain.PostPage, error) {
	if !domain.ValidID(authorID) {
		return domain.PostPage{}, nil
	}
	q := func(keyset string) string {
		return `SELECT ` + postColumns + likedBy(3) + ` FROM posts WHERE author_id = $1` + keyset + newestFirst
	}
	return s.listPosts(ctx, q, authorID, viewerID, after, limit)
}

// newestFirst ends the queries of post lists: the keyset order, and one more row than asked
// ($2 is the limit plus one), which tells whether a next page exists.
const newestFirst = ` ORDER BY created_at DESC, id DESC LIMIT $2`

// HomeTimeline returns a page of the posts written by any of authorIDs (the accounts the
// viewer follows), newest first, after the cursor, at most limit of them, as viewerID sees
// them. Malformed and repeated ids are ignored; no authors means an empty page.
//
// Fan-out on READ, chosen by measurement: BenchmarkHomeTimeline and BenchmarkPublishPost in
// bench_test.go (and their PostgreSQL twins) time both designs on the same data. On a shared
// 2-core machine, for a page of 20 (rounded; repeated runs differ by up to half):
//
//	                                                SQLite    PostgreSQL
//	read a page, 200 followees × 50 posts each      0.4 ms    1.4 ms
//	read a page, 200 followees × 500 posts each     0.6 ms    1.5 ms
//	read a page, 5000 followees × 20 posts each     10 ms     44 ms
//	read a page from a fan-out-on-write table       0.06 ms   0.15 ms  (any of the above)
//	publish a post, fan-out on read                 0.06 ms   0.12 ms
//	publish, fan-out on write, 100 followers        2.8 ms    1.0 ms
//	publish, fan-out on write, 1000 followers       29 ms     8 ms
//	publish, fan-out on write, 5000 followers       89 ms     39 ms
//
// A timeline table reads a page faster, but a millisecond is not what a reader notices, while
// fan-out on write charges every post a row per follower, whether or not anyone reads them: a
// post by an account with 5000 followers holds SQLite's single write lock (the embedded
// default) for ~90 ms, stalling every other write of the process, and an account with a
// million followers would write a million rows per post. Reads stay bounded instead: an
// account follows at most 5000 others (user-service enforces it), each followed author costs
// one index descent reading at most a page of index entries, and reading deeper pages or
// authors with a long history costs no more (the 500-posts row). Fan-out on read is also
// exact: a new post, a deletion, a follow or an unfollow shows at the next read, with no
// consumer lag, no second fan-out to remove a deleted post, and no copy of user-service's
// follow graph kept in step through its events. Should very large followings become common,
// the 5000-followee row is where to look again.
//
// The query is one statement with the ids bound as ONE array parameter (as idIn binds them).
// It finds
// the page's ids from posts_author_recent_idx (author_id, created_at DESC, id DESC) alone,
// then reads those posts by primary key. Per followed author it reads the index from the
// cursor on and stops after a page of entries; the engines need different spellings of that:
//   - SQLite: author_id IN (SELECT value FROM json_each($1)) ... ORDER BY ... LIMIT; its
//     planner runs one covering-index search per id and ends each once the page is full;
//   - PostgreSQL: that IN form (= ANY) reads every post of every followed author before
//     sorting (measured: 14 ms at 500 posts per author, growing with history), so the stop is
//     spelled out as a LATERAL subquery with its own LIMIT over unnest($1::uuid[]), an
//     index-only scan per author.
func (s *Store) HomeTimeline(ctx context.Context, authorIDs []string, viewerID string, after domain.Cursor, limit int) (domain.PostPage, error) {
	ids := validIDs(authorIDs)
	if len(ids) == 0 {
		return domain.PostPage{}, nil
	}
	// The page's ids first, from the index alone; then those posts, by primary key.
	var (
		pageIDs func(keyset string) string
		arg     any
	)
	if s.db.Dialect() == database.Postgres {
		arg = ids
		pageIDs = func(keyset string) string {
			return `SELECT p.id FROM unnest($1::uuid[]) AS followed (aid)
				CROSS JOIN LATERAL (SELECT created_at, id FROM posts
					WHERE author_id = followed.aid` + keyset + newestFirst + `) AS p
				ORDER BY p.created_at DESC, p.id DESC LIMIT $2`
		}
	} else {
		cond, list, err := s.idIn("author_id", 1, ids)
		if err != nil {
			return domain.PostPage{}, fmt.Errorf("post store: home timeline: %w", err)
		}
		arg = list
		pageIDs = func(keyset string) string { return `SELECT id FROM posts WHERE ` + cond + keyset + newestFirst }
	}
	q := func(keyset string) string {
		return `SELECT ` + postColumns + likedBy(3) + ` FROM posts WHERE id IN (` + pageIDs(keyset) + `)` + newestFirst
	}
	return s.listPosts(ctx, q, arg, viewerID, after, limit)
}

// listPosts runs the post-list query query(keyset) with $1 bound to arg, $2 to limit+1, $3 to
// the viewer (likedBy's parameter) and, past the first page, the keyset condition
// (created_at, id) < ($4, $5): keyset pagination in descending order, where each page starts
// exactly where the previous one ended, however deep the client has paged, and posts added
// meanwhile (newer than anything listed) neither repeat nor push entries into the later pages.
func (s *Store) listPosts(ctx context.Context, query func(keyset string) string, arg any, viewerID string, after domain.Cursor, limit int) (domain.PostPage, error) {
	args := []any{arg, limit + 1, viewerArg(viewerID)}
	keyset := ""
	if !after.IsZero() {
		keyset = ` AND (created_at, id) < ($4, $5)`
		args = append(args, after.At, after.ID)
	}
	rows, err := s.db.SQL().QueryContext(ctx, query(keyset), args...)
	if err != nil {
		return domain.PostPage{}, fmt.Errorf("post store: list posts: %w", err)
	}
	defer rows.Close()
	var page domain.PostPage
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			return domain.PostPage{}, fmt.Errorf("post store: list posts: %w", err)
		}
		page.Posts = append(page.Posts, p)
	}
	if err := rows.Err(); err != nil {
		return domain.PostPage{}, fmt.Errorf("post store: list posts: %w", err)
	}
	if len(page.Posts) > limit {
		page.Posts = page.Posts[:limit]
		last := page.Posts[limit-1]
		page.Next = domain.Cursor{At: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}
