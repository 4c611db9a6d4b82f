package adapters_test

import (
	"testing"

	"github.com/piazza-social/piazza/services/messaging/adapters/storetest"
)

func TestSQLStoreMeetsTheContract(t *testing.T) {
	storetest.Run(t, storetest.SQLiteHarness)
}
