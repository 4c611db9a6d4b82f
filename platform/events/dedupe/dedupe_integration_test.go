//go:build integration

package dedupe_test

import (
	"testing"

	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/infratest"
)

func TestDedupeOnPostgres(t *testing.T) {
	runSuite(t, databasetest.Opener(func(t *testing.T) string { return infratest.NewPostgresDatabase(t) }))
}
