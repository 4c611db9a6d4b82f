// Package databasetest holds the contract suite that platform/database must pass on every engine,
// and helpers that open test databases.
package databasetest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/database"
)

// Opener adapts newURL (which creates a fresh, empty database for t and returns its URL) into
// the open function RunContract takes: the first call for a given t creates the database, later
// calls with the same t open further handles (each with its own pool) on that same database.
// Every handle is closed when t ends.
func Opener(newURL func(t *testing.T) string) func(t *testing.T) *database.DB {
	var (
		mu   sync.Mutex
		urls = map[*testing.T]string{}
	)
	return func(t *testing.T) *database.DB {
		t.Helper()
		mu.Lock()
		url, ok := urls[t]
		if !ok {
			url = newURL(t)
			urls[t] = url
			t.Cleanup(func() {
				mu.Lock()
				delete(urls, t)
				mu.Unlock()
			})
		}
		mu.Unlock()
		return Open(t, url)
	}
}

// Open opens url for the duration of t.
func Open(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, database.Config{URL: url}, nil)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close database: %v", err)
		}
	})
	return db
}

// SQLiteURL returns the URL of a new SQLite database file in a temporary directory of t.
func SQLiteURL(t *testing.T) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// OpenSQLite opens a new SQLite database file in a temporary directory of t.
func OpenSQLite(t *testing.T) *database.DB {
	t.Helper()
	return Open(t, SQLiteURL(t))
}
