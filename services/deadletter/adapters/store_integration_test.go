//go:build integration

package adapters_test

import (
	"testing"

	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/platform/database/databasetest"
	"github.com/piazza-social/piazza/platform/infratest"
	"github.com/piazza-social/piazza/services/deadletter/adapters/storetest"
)

func TestStoreContractOnPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *database.DB {
		return databasetest.Open(t, infratest.NewPostgresDatabase(t))
	})
}
