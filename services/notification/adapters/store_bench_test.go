package adapters_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/database"
	"github.com/piazza-social/piazza/services/notification/adapters/storetest"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// BenchmarkDeliverFanOutBatch measures one fan-out batch on SQLite: one event stored for 1000
// recipients whose inboxes already exist, in one transaction (seq allocation included).
func BenchmarkDeliverFanOutBatch(b *testing.B) {
	ctx := context.Background()
	db, err := database.Open(ctx, database.Config{URL: "sqlite:" + filepath.Join(b.TempDir(), "bench.db")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := storetest.OpenStore(b, db)
	recipients := make([]string, 1000)
	for i := range recipients {
		recipients[i] = uuid.NewString()
	}
	data := json.RawMessage(`{"actor":{"id":"a","username":"ann"},"post_id":"p","author":{"id":"a","username":"ann"},"text":"hello"}`)
	draft := func() domain.Draft {
		return domain.Draft{EventID: uuid.NewString(), Type: eventsv1.PostCreated, Data: data, CreatedAt: time.Now()}
	}
	if _, _, err := st.Deliver(ctx, draft(), recipients); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, fresh, err := st.Deliver(ctx, draft(), recipients); err != nil || fresh != len(recipients) {
			b.Fatalf("deliver: %d new, %v", fresh, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recipients)), "ns/recipient")
}
