package adapters_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/post/adapters"
	"github.com/piazza-social/piazza/services/post/adapters/storetest"
	"github.com/piazza-social/piazza/services/post/domain"
)

// The home timeline can be built on read (HomeTimeline: one query over the followed authors'
// posts) or on write (a consumer copies every new post into a timeline table row per
// follower; a page is then one range scan of the reader's rows). These benchmarks measure
// both sides of that trade on the same data: the cost of reading a page, and the cost of
// publishing a post. bench_integration_test.go runs them on PostgreSQL too.
//
//	go test -run '^$' -bench 'HomeTimeline|PublishPost' ./services/post/adapters/

// BenchmarkHomeTimeline reads a page of 20 for a viewer following 200 authors with 50 posts
// each, 200 prolific authors with 500 each, and the follow limit: 5000 authors with 20 each.
// It reads the first page, and a page 5000 posts deep.
func BenchmarkHomeTimeline(b *testing.B) {
	benchHomeTimeline(b, openSQLite)
}

// BenchmarkPublishPost is the write side: storing one post with fan-out on read (just the
// post) and with fan-out on write (the post plus a timeline row per follower).
func BenchmarkPublishPost(b *testing.B) {
	benchPublishPost(b, openSQLite)
}

func openSQLite(b *testing.B) *database.DB {
	return openURL(b, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
}

// openURL opens the database at url for the duration of b.
func openURL(b *testing.B, url string) *database.DB {
	b.Helper()
	db, err := database.Open(context.Background(), database.Config{URL: url}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// timelineMigrations is the table fan-out on write would need, for the benchmark only.
var timelineMigrations = database.MigrationSet{Name: "bench_timeline", FS: fstest.MapFS{
	"0001_timeline.postgres.sql": {Data: []byte(`CREATE TABLE bench_timeline (
		owner_id   UUID        NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		post_id    UUID        NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
		PRIMARY KEY (owner_id, created_at, post_id))`)},
	"0001_timeline.sqlite.sql": {Data: []byte(`CREATE TABLE bench_timeline (
		owner_id   TEXT        NOT NULL,
		created_at TIMESTAMPTZ NOT NULL,
		post_id    TEXT        NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
		PRIMARY KEY (owner_id, created_at, post_id))`)},
}}

const pageSize = 20

type fixture struct {
	st      *adapters.Store
	db      *database.DB
	viewer  string
	authors []string
	deep    domain.Cursor // the position after the 5000th newest post
}

// newFixture fills db with followees × perAuthor posts, interleaved in time, and the viewer's
// fan-out-on-write timeline holding every one of them.
func newFixture(b *testing.B, db *database.DB, followees, perAuthor int) *fixture {
	b.Helper()
	ctx := context.Background()
	st, _ := storetest.OpenStore(b, db)
	if _, err := database.Migrate(ctx, db, timelineMigrations); err != nil {
		b.Fatal(err)
	}
	f := &fixture{st: st, db: db, viewer: storetest.NewID(b)}
	for range followees {
		f.authors = append(f.authors, storetest.NewID(b))
	}
	base := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var posts, timeline [][]any
	for i := range followees * perAuthor {
		id, at := storetest.NewID(b), base.Add(time.Duration(i)*time.Second)
		posts = append(posts, []any{id, f.authors[i%followees], "a post of moderate length, like most of them are", at})
		timeline = append(timeline, []any{f.viewer, at, id})
	}
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := insertRows(ctx, tx, `INSERT INTO posts (id, author_id, text, created_at) VALUES `, posts); err != nil {
			return err
		}
		return insertRows(ctx, tx, `INSERT INTO bench_timeline (owner_id, created_at, post_id) VALUES `, timeline)
	})
	if err != nil {
		b.Fatal(err)
	}
	if db.Dialect() == database.Postgres {
		if _, err := db.SQL().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
	}
	// The deep cursor: the 5000th newest post.
	p, err := st.HomeTimeline(ctx, f.authors, "", domain.Cursor{}, 1)
	if err != nil || len(p.Posts) != 1 {
		b.Fatalf("first post: %v", err)
	}
	newest := p.Posts[0].CreatedAt
	var id string
	deepAt := newest.Add(-5000 * time.Second)
	if err := db.SQL().QueryRowContext(ctx, `SELECT id FROM posts WHERE created_at = $1`, deepAt).Scan(&id); err != nil {
		b.Fatalf("deep post: %v", err)
	}
	f.deep = domain.Cursor{At: deepAt, ID: id}
	return f
}

// insertRows runs the INSERT prefix for rows, many rows per statement.
func insertRows(ctx context.Context, tx *sql.Tx, prefix string, rows [][]any) error {
	const perStatement = 200
	for len(rows) > 0 {
		batch := rows[:min(perStatement, len(rows))]
		rows = rows[len(batch):]
		var q strings.Builder
		q.WriteString(prefix)
		var args []any
		for i, row := range batch {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(")
			for j, v := range row {
				if j > 0 {
					q.WriteString(", ")
				}
				args = append(args, v)
				q.WriteString("$" + strconv.Itoa(len(args)))
			}
			q.WriteString(")")
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// readTimelineTable is fan-out on write's page read: the owner's rows after the cursor,
// joined to the posts.
func (f *fixture) readTimelineTable(ctx context.Context, after domain.Cursor) (int, error) {
	q := `SELECT p.id, p.author_id, p.text, p.created_at, p.like_count, p.comment_count
		FROM bench_timeline t JOIN posts p ON p.id = t.post_id WHERE t.owner_id = $1`
	args := []any{f.viewer, pageSize + 1}
	if !after.IsZero() {
		q += ` AND (t.created_at, t.post_id) < ($3, $4)`
		args = append(args, after.At, after.ID)
	}
	rows, err := f.db.SQL().QueryContext(ctx, q+` ORDER BY t.created_at DESC, t.post_id DESC LIMIT $2`, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var p domain.Post
		if err := rows.Scan(&p.ID, &p.AuthorID, &p.Text, &p.CreatedAt, &p.LikeCount, &p.CommentCount); err != nil {
			return 0, err
		}
		n++
	}
	return n, rows.Err()
}

func benchHomeTimeline(b *testing.B, open func(b *testing.B) *database.DB) {
	for _, size := range []struct{ followees, perAuthor int }{{200, 50}, {200, 500}, {5000, 20}} {
		f := newFixture(b, open(b), size.followees, size.perAuthor)
		ctx := context.Background()
		for _, pos := range []struct {
			name  string
			after domain.Cursor
		}{{"first-page", domain.Cursor{}}, {"deep-page", f.deep}} {
			name := fmt.Sprintf("followees=%d,posts=%d/%s", size.followees, size.perAuthor, pos.name)
			b.Run(name+"/fan-out-on-read", func(b *testing.B) {
				for b.Loop() {
					p, err := f.st.HomeTimeline(ctx, f.authors, f.viewer, pos.after, pageSize)
					if err != nil || len(p.Posts) != pageSize {
						b.Fatalf("%d posts, %v", len(p.Posts), err)
					}
				}
			})
			b.Run(name+"/fan-out-on-write", func(b *testing.B) {
				for b.Loop() {
					if n, err := f.readTimelineTable(ctx, pos.after); err != nil || n != pageSize+1 {
						b.Fatalf("%d posts, %v", n, err)
					}
				}
			})
		}
	}
}

func benchPublishPost(b *testing.B, open func(b *testing.B) *database.DB) {
	ctx := context.Background()
	db := open(b)
	st, _ := storetest.OpenStore(b, db)
	if _, err := database.Migrate(ctx, db, timelineMigrations); err != nil {
		b.Fatal(err)
	}
	author := storetest.NewID(b)
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	next := func() (string, time.Time) {
		at = at.Add(time.Millisecond)
		return storetest.NewID(b), at
	}
	b.Run("fan-out-on-read", func(b *testing.B) {
		for b.Loop() {
			id, at := next()
			if err := st.CreatePost(ctx, domain.Post{ID: id, AuthorID: author, Text: "hello", CreatedAt: at}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, followers := range []int{100, 1000, 5000} {
		owners := make([]string, followers)
		for i := range owners {
			owners[i] = storetest.NewID(b)
		}
		b.Run(fmt.Sprintf("fan-out-on-write/followers=%d", followers), func(b *testing.B) {
			for b.Loop() {
				id, at := next()
				if err := st.CreatePost(ctx, domain.Post{ID: id, AuthorID: author, Text: "hello", CreatedAt: at}); err != nil {
					b.Fatal(err)
				}
				// What the consumer of post.created would do: a row per follower, many rows
				// per statement.
				rows := make([][]any, len(owners))
				for i, o := range owners {
					rows[i] = []any{o, at, id}
				}
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					return insertRows(ctx, tx, `INSERT INTO bench_timeline (owner_id, created_at, post_id) VALUES `, rows)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
