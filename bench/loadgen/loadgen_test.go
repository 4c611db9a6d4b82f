package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRunSchedulesEveryArrivalAndCountsOutcomes(t *testing.T) {
	res, err := Run(context.Background(), Config{Rate: 1000, Duration: 100 * time.Millisecond},
		func(_ context.Context, n int64, _ time.Time) error {
			if n%10 == 0 {
				return errors.New("boom")
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled != 100 || res.Completed != 90 || res.Failed != 10 || res.Dropped != 0 {
		t.Fatalf("scheduled %d completed %d failed %d dropped %d, want 100/90/10/0", res.Scheduled, res.Completed, res.Failed, res.Dropped)
	}
	if res.Latency.Count != 90 {
		t.Errorf("latency count %d, want one per success (90)", res.Latency.Count)
	}
	if res.Errors["boom"] != 10 {
		t.Errorf("errors %v, want boom: 10", res.Errors)
	}
}

// An open-loop generator must not wait for a slow server: arrivals beyond the in-flight cap
// are dropped, and the latency of those that ran is measured from their scheduled time.
func TestRunDropsArrivalsBeyondTheCapInsteadOfWaiting(t *testing.T) {
	live := &Live{}
	res, err := Run(context.Background(), Config{Rate: 1000, Duration: 50 * time.Millisecond, MaxInFlight: 5, Live: live},
		func(_ context.Context, n int64, _ time.Time) error {
			// The first operations hold their slots until arrival 40 has been counted (so arrivals 5 to 39 find them all taken).
			for n < 5 && live.Scheduled.Load() < 41 {
				time.Sleep(time.Millisecond)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped < 35 || res.Completed+res.Dropped != res.Scheduled || res.Scheduled != 50 {
		t.Fatalf("scheduled %d completed %d dropped %d: want 50 scheduled, at least the 35 arrivals that found the cap reached dropped, and every arrival either run or dropped",
			res.Scheduled, res.Completed, res.Dropped)
	}
	// Arrival 0 ran until arrival 39, due 39 ms after it, had been scheduled.
	if res.Latency.Max < 39 {
		t.Errorf("max latency %.1f ms, want it measured from the scheduled time (≥ 39 ms)", res.Latency.Max)
	}
}

func TestRunRejectsAZeroRate(t *testing.T) {
	if _, err := Run(context.Background(), Config{Duration: time.Second}, nil); err == nil {
		t.Fatal("no error for a zero rate")
	}
}

func TestHistogramSummaryReportsPercentiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	near := func(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }
	if s.Count != 1000 || !near(s.P50, 500) || !near(s.P99, 990) || !near(s.Max, 1000) {
		t.Fatalf("summary %+v, want count 1000, p50≈500, p99≈990, max≈1000", s)
	}
	o := NewHistogram()
	o.Record(-time.Second) // recorded as zero
	h.Merge(o)
	if h.Count() != 1001 {
		t.Fatalf("count after merge %d, want 1001", h.Count())
	}
}

func TestRunWithACountSchedulesExactlyThatManyArrivals(t *testing.T) {
	res, err := Run(context.Background(), Config{Rate: 3000, Count: 7}, func(context.Context, int64, time.Time) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled != 7 || res.Completed != 7 {
		t.Fatalf("scheduled %d completed %d, want 7 and 7", res.Scheduled, res.Completed)
	}
}
