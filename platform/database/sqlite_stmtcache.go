package database

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"strings"
)

// maxCachedStatementText is the longest statement text a connection keeps prepared. Longer
// texts are the generated multi-row statements (a fan-out's batch insert): their compiled
// program grows with them, their parse is small next to running them, and keeping a few
// hundred of them would pin megabytes per connection. With it, a connection's cache holds at
// most Config.SQLiteStatements × 4 KiB of text and the programs of statements that short.
const maxCachedStatementText = 4096

// stmtCache keeps a SQLite connection's prepared statements by their exact text, the most
// recently used first, so that a statement the connection runs again is bound and stepped
// without being parsed and planned again: the driver prepares a statement on every Exec and
// Query otherwise, and for the embedded default's queries that parse costs as much CPU as
// running them.
//
// A SQLite statement runs one execution at a time, and its rows are that execution: a cached
// statement whose rows are still open is busy, and a second run of the same text on the
// connection meanwhile (a query nested in another's loop) goes uncached. A statement evicted
// while busy is closed when its rows close; Close closes the others. The connection is used
// by one goroutine at a time (database/sql's contract), and so is the cache.
type stmtCache struct {
	conn     driver.ConnPrepareContext
	capacity int
	byText   map[string]*list.Element // of *cachedStmt
	lru      list.List                // front: the most recently used
	stats    stmtCacheStats
}

// stmtCacheStats counts what a cache did; tests read them.
type stmtCacheStats struct {
	prepared int // statements prepared and kept
	reused   int // runs of a kept statement
	bypassed int // runs of a cacheable text whose statement was busy, run uncached
	closed   int // kept statements closed (evicted or the cache closed)
}

type cachedStmt struct {
	cache *stmtCache
	stmt  sqliteDriverStmt
	text  string
	elem  *list.Element // nil once evicted
	busy  bool          // its rows are open
}

// sqliteDriverStmt is what the cache needs of a modernc statement.
type sqliteDriverStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// newStmtCache returns a cache of up to capacity statements of conn; capacity ≤ 0 keeps none.
func newStmtCache(conn driver.ConnPrepareContext, capacity int) *stmtCache {
	return &stmtCache{conn: conn, capacity: capacity, byText: make(map[string]*list.Element)}
}

// cacheable reports whether query is kept prepared: one statement (a trailing semicolon
// aside) of at most maxCachedStatementText bytes. Several statements in one text (a
// migration's script) are prepared and run one after the other by the driver, which can keep
// none of them; a ';' inside a string literal also makes a text uncached, which costs only
// the parse it always had.
func cacheable(query string) bool {
	if len(query) > maxCachedStatementText {
		return false
	}
	q := strings.TrimRight(query, " \t\r\n;")
	return q != "" && !strings.Contains(q, ";")
}

// acquire returns query's kept statement, preparing and keeping it on first use, marked busy
// until release. It returns nil and no error when query is to be run uncached: not cacheable,
// its statement busy, or no cache. A statement that fails to prepare is not kept; the error is
// the driver's, as an uncached run would have returned it.
func (c *stmtCache) acquire(ctx context.Context, query string) (*cachedStmt, error) {
	if c.capacity <= 0 || !cacheable(query) {
		return nil, nil
	}
	if e, ok := c.byText[query]; ok {
		s := e.Value.(*cachedStmt)
		if s.busy {
			c.stats.bypassed++
			return nil, nil
		}
		c.lru.MoveToFront(e)
		c.stats.reused++
		s.busy = true
		return s, nil
	}
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ds, ok := st.(sqliteDriverStmt)
	if !ok {
		_ = st.Close()
		return nil, errors.New("database: sqlite statement lacks the context interfaces")
	}
	s := &cachedStmt{cache: c, stmt: ds, text: query, busy: true}
	s.elem = c.lru.PushFront(s)
	c.byText[query] = s.elem
	c.stats.prepared++
	for c.lru.Len() > c.capacity {
		c.evict(c.lru.Back())
	}
	return s, nil
}

// release marks s idle again once its execution is over (an Exec returned, a Query's rows
// closed); an evicted s is closed now.
func (s *cachedStmt) release() {
	s.busy = false
	if s.elem == nil {
		s.close()
	}
}

func (s *cachedStmt) close() {
	s.cache.stats.closed++
	// A failure to finalize a statement that is not running leaves nothing to undo.
	_ = s.stmt.Close()
}

func (c *stmtCache) evict(e *list.Element) {
	s := e.Value.(*cachedStmt)
	c.lru.Remove(e)
	delete(c.byText, s.text)
	s.elem = nil
	if !s.busy {
		s.close()
	}
}

// close closes every kept statement before the connection closes (SQLite keeps a connection
// with unfinalized statements alive); a busy one is closed when its rows close.
func (c *stmtCache) close() {
	for e := c.lru.Front(); e != nil; e = c.lru.Front() {
		c.evict(e)
	}
}
