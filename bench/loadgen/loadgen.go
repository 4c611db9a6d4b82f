// Package loadgen drives load open-loop and records latency in HDR histograms.
//
// Open-loop means the arrivals follow a fixed schedule — arrival n is due at start + n/rate —
// whatever the system under test does. A closed-loop driver (send, wait, send) slows down with
// the server and so hides exactly the latency it should measure ("coordinated omission").
// Here every latency is measured from the arrival's scheduled time, not from when the request
// happened to be sent, and when the number of operations in flight reaches a cap an arrival is
// counted as dropped instead of waiting for a free slot: a saturated server shows up as drops
// and long latencies, never as a quietly lower request rate.
package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one open-loop run.
type Config struct {
	// Rate is the number of arrivals per second; required.
	Rate float64
	// Duration is how long arrivals are scheduled; required unless Count is set. Run returns
	// once every operation started has finished.
	Duration time.Duration
	// Count, when positive, is the number of arrivals instead: Count/Rate seconds of them.
	Count int64
	// MaxInFlight caps the operations running at once; an arrival that finds the cap reached
	// is dropped (counted, not run). Default 1000.
	MaxInFlight int
	// Live, when set, is updated as the run goes, for progress displays.
	Live *Live
}

// Live holds the counters of a run in progress; safe to read while the run goes on.
type Live struct {
	Scheduled atomic.Int64
	Completed atomic.Int64
	Failed    atomic.Int64
	Dropped   atomic.Int64
	InFlight  atomic.Int64
}

// Op is one operation. n numbers the arrivals from 0; scheduled is when it was due. An error
// counts the operation as failed; its latency is not recorded.
type Op func(ctx context.Context, n int64, scheduled time.Time) error

// Result is what one run measured.
type Result struct {
	// Rate is the arrival rate asked for; Throughput the operations completed successfully
	// per second of the schedule.
	Rate       float64 `json:"rate_per_s"`
	Throughput float64 `json:"throughput_per_s"`
	Duration   string  `json:"duration"`
	Scheduled  int64   `json:"scheduled"`
	Completed  int64   `json:"completed"`
	Failed     int64   `json:"failed"`
	// Dropped counts arrivals not run because MaxInFlight operations were still running.
	Dropped int64 `json:"dropped"`
	// MaxLag is how late the generator itself started an arrival at worst (a busy client
	// machine); the latencies include it.
	MaxLag string `json:"max_generator_lag"`
	// Latency is measured from each arrival's scheduled time to the end of its operation.
	Latency Summary `json:"latency"`
	// Errors counts failures by message (at most 20 distinct messages, the rest as "other").
	Errors map[string]int64 `json:"errors,omitempty"`

	// Histogram holds the latencies, for merging runs.
	Histogram *Histogram `json:"-"`
}

// Run schedules cfg.Rate arrivals per second for cfg.Duration and runs op for each, each in
// its own goroutine. It returns when every operation started has finished, or ctx is done
// (then with ctx's error and what was measured until then).
func Run(ctx context.Context, cfg Config, op Op) (Result, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 && cfg.Count <= 0 {
		return Result{}, fmt.Errorf("loadgen: rate (%v) and duration (%v) or count (%d) must be positive", cfg.Rate, cfg.Duration, cfg.Count)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1000
	}
	live := cfg.Live
	if live == nil {
		live = &Live{}
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	total := max(int64(cfg.Duration/interval), 1)
	if cfg.Count > 0 {
		total = cfg.Count
	}
	hist := NewHistogram()
	errs := newErrorCounts(20)
	slots := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	var maxLag time.Duration

	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next int64
	for next < total && ctx.Err() == nil {
		// Fire every arrival that is due by now, then sleep until the next one: one timer
		// per batch, not per arrival, so high rates cost the generator little.
		now := time.Now()
		due := min(int64(now.Sub(start)/interval)+1, total)
		for ; next < due; next++ {
			scheduled := start.Add(time.Duration(next) * interval)
			maxLag = max(maxLag, now.Sub(scheduled))
			live.Scheduled.Add(1)
			select {
			case slots <- struct{}{}:
			default:
				live.Dropped.Add(1)
				continue
			}
			live.InFlight.Add(1)
			wg.Add(1)
			go func(n int64, scheduled time.Time) {
				defer wg.Done()
				defer func() { <-slots; live.InFlight.Add(-1) }()
				if err := op(ctx, n, scheduled); err != nil {
					live.Failed.Add(1)
					errs.add(err)
					return
				}
				hist.Record(time.Since(scheduled))
				live.Completed.Add(1)
			}(next, scheduled)
		}
		if next >= total {
			break
		}
		timer.Reset(time.Until(start.Add(time.Duration(next) * interval)))
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	wg.Wait()

	res := Result{
		Rate:       cfg.Rate,
		Duration:   (time.Duration(total) * interval).String(),
		Scheduled:  live.Scheduled.Load(),
		Completed:  live.Completed.Load(),
		Failed:     live.Failed.Load(),
		Dropped:    live.Dropped.Load(),
		MaxLag:     maxLag.Round(time.Microsecond).String(),
		Latency:    hist.Summary(),
		Errors:     errs.snapshot(),
		Histogram:  hist,
		Throughput: float64(live.Completed.Load()) / (time.Duration(total) * interval).Seconds(),
	}
	return res, ctx.Err()
}

// errorCounts counts errors by message, keeping at most limit distinct messages.
type errorCounts struct {
	mu    sync.Mutex
	limit int
	m     map[string]int64
}

func newErrorCounts(limit int) *errorCounts { return &errorCounts{limit: limit, m: map[string]int64{}} }

func (e *errorCounts) add(err error) {
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "cancelled"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.m[msg]; !ok && len(e.m) >= e.limit {
		msg = "other"
	}
	e.m[msg]++
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return nil
	}
	return maps.Clone(e.m)
}

// TopErrors returns the messages of m, most frequent first, at most n of them.
func TopErrors(m map[string]int64, n int) []string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}
