package database

import (
	"testing"
	"time"
)

func TestIsWriteRecognisesDataChangingStatements(t *testing.T) {
	for q, want := range map[string]bool{
		"INSERT INTO t VALUES (1) RETURNING id": true,
		"  update t SET a = 1":                  true,
		"-- why\n\tDELETE FROM t RETURNING *":   true,
		"REPLACE INTO t VALUES (1)":             true,
		"SELECT * FROM t":                       false,
		"WITH x AS (SELECT 1) SELECT * FROM x":  false,
		"(SELECT 1)":                            false,
		"":                                      false,
		"-- only a comment":                     false,
		"insertion_sort":                        true, // harmless: a failing statement anyway
	} {
		if got := isWrite(q); got != want {
			t.Errorf("isWrite(%q) = %v, want %v", q, got, want)
		}
	}
}

func TestSQLiteTimeTextIsFixedWidthUTCMicroseconds(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 59, 59, 987_654_321, time.FixedZone("", -3*3600))
	s := formatSQLiteTime(at)
	if s != "2024-03-01 02:59:59.987654+00:00" || !isCanonicalSQLiteTime(s) {
		t.Fatalf("formatSQLiteTime = %q", s)
	}
	got, ok := parseSQLiteTime(s)
	if !ok || !got.Equal(at.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Fatalf("parse(%q) = %v, %v", s, got, ok)
	}
	// What SQLite's CURRENT_TIMESTAMP writes: no zone, meaning UTC.
	got, ok = parseSQLiteTime("2024-03-01 02:59:59")
	if !ok || !got.Equal(time.Date(2024, 3, 1, 2, 59, 59, 0, time.UTC)) {
		t.Fatalf("parse of CURRENT_TIMESTAMP text = %v, %v", got, ok)
	}
	for _, s := range []string{"2024-03-01 02:59:59+00:00", "hello", "2024-03-01 02:59:59.987654+01:00"} {
		if isCanonicalSQLiteTime(s) {
			t.Errorf("isCanonicalSQLiteTime(%q) = true", s)
		}
	}
}
