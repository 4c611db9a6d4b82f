package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 10 minutes with three significant
// digits: 0.1 % error at any magnitude, a few tens of kilobytes per histogram.
const (
	lowest      = 1
	highest     = int64(10 * time.Minute / time.Microsecond)
	significant = 3
)

// Histogram records latencies in an HDR histogram. It is safe for concurrent use; values
// beyond ten minutes are recorded as ten minutes (and still counted).
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(lowest, highest, significant)}
}

// Record adds one latency. A negative one (an event seen before its cause was confirmed) is
// recorded as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d/time.Microsecond), 0)
	v = min(v, highest)
	h.mu.Lock()
	_ = h.h.RecordValue(v) // cannot fail: v is within the trackable range
	h.mu.Unlock()
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	c := o.h.Export()
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(hdrhistogram.Import(c))
	h.mu.Unlock()
}

// Count is the number of values recorded.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Summary is the distribution of a histogram in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns the count, mean, p50, p90, p99, p99.9 and max recorded so far.
func (h *Histogram) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return Summary{}
	}
	q := h.h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.h.TotalCount(),
		Mean:  h.h.Mean() / 1000,
		P50:   ms(q[50]),
		P90:   ms(q[90]),
		P99:   ms(q[99]),
		P999:  ms(q[99.9]),
		Max:   ms(h.h.Max()),
	}
}
