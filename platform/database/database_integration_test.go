//go:build integration

package database_test

import (
	"testing"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/infratest"
)

func TestPostgresMeetsTheContract(t *testing.T) {
	databasetest.RunContract(t, databasetest.Opener(func(t *testing.T) string {
		return infratest.NewPostgresDatabase(t)
	}))
}

func TestPostgresStatementsAreSpansOfTheCallersTraceOnly(t *testing.T) {
	testStatementSpans(t, infratest.NewPostgresDatabase(t), "postgresql")
}
