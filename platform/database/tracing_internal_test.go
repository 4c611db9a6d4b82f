package database

import "testing"

func TestOperationIsTheStatementsFirstKeywordInUpperCase(t *testing.T) {
	for q, want := range map[string]string{
		"INSERT INTO t VALUES ($1)":             "INSERT",
		"  select * from t":                     "SELECT",
		"-- why\n\t(SELECT 1) UNION (SELECT 2)": "SELECT",
		"with x AS (SELECT 1) SELECT * FROM x":  "WITH",
		"":                                      "QUERY",
		"-- only a comment":                     "QUERY",
		"PRAGMA journal_mode":                   "PRAGMA",
	} {
		if got := operation(q); got != want {
			t.Errorf("operation(%q) = %q, want %q", q, got, want)
		}
	}
}
