package scenario

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/bench/loadgen"
	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

// capacityFigures is what sse-capacity measured.
type capacityFigures struct {
	URL       string `json:"url"`
	Requested int    `json:"connections_requested"`
	// Attempted is Requested lowered to what the open-file limits allow.
	Attempted int   `json:"connections_attempted"`
	Opened    int64 `json:"connections_opened"`
	// ClosedByServer counts streams the server ended while they should have stayed open.
	ClosedByServer int64 `json:"closed_by_server"`
	// Held is the number of streams open at the final measurement.
	Held int64 `json:"connections_held"`
	// Connect is the opening of the streams, open-loop: its latency is the time to connect,
	// from each connection's scheduled time to the response headers.
	Connect  loadgen.Result `json:"connect"`
	Baseline target.Stats   `json:"baseline"`
	Final    target.Stats   `json:"final"`
	// PerConnection is (final − baseline) / held.
	PerConnection perConnection    `json:"per_connection"`
	Samples       []capacitySample `json:"samples"`
	ToolFDLimit   uint64           `json:"tool_fd_limit"`
}

type perConnection struct {
	RSSBytes       float64 `json:"rss_bytes"`
	HeapInuseBytes float64 `json:"heap_inuse_bytes"`
	FDs            float64 `json:"fds"`
	Goroutines     float64 `json:"goroutines"`
}

// capacitySample is the server at one moment of the ramp.
type capacitySample struct {
	Elapsed     string       `json:"elapsed"`
	Connections int64        `json:"connections"`
	Stats       target.Stats `json:"stats"`
}

// runSSECapacity opens p.Connections idle streams to one gateway at p.RampRate per second,
// holds them for p.Hold, and reports the server's figures per connection.
func runSSECapacity(ctx context.Context, e *env, p SSECapacityParams) report.Scenario {
	out := report.Scenario{Config: p}
	fail := func(err error) report.Scenario { return failed(out, err) }
	if p.Connections < 1 || p.RampRate <= 0 {
		return fail(fmt.Errorf("sse-capacity: connections and ramp rate must be positive: %+v", p))
	}
	url, adminURL, pid := e.api(0).EventsURL(), e.dep.AdminURL(0), e.dep.PID(0)
	var headers []http.Header
	if e.opts.SSEURL != "" {
		url, adminURL, pid = e.opts.SSEURL, "", e.opts.SSEPID
		headers = []http.Header{e.opts.SSEHeader}
		out.Notes = append(out.Notes, "foreign SSE server: no users created, every connection uses the given URL and headers")
	} else {
		users := min(max(p.Users, 1), p.Connections)
		accounts, err := e.signup(ctx, "u", users)
		if err != nil {
			return fail(err)
		}
		for _, a := range accounts {
			headers = append(headers, http.Header{"Authorization": {"Bearer " + a.Token}})
		}
	}

	baseline := e.readStats(ctx, adminURL, pid)
	n := p.Connections
	if lim := int(e.opts.FDLimit); lim > 0 && n > lim-256 {
		n = lim - 256
		out.Notes = append(out.Notes, fmt.Sprintf("lowered to %d connections: the tool's open-file limit is %d", n, lim))
	}
	if baseline.MaxFDs > 0 && baseline.OpenFDs >= 0 && int64(n) > baseline.MaxFDs-baseline.OpenFDs-128 {
		n = int(baseline.MaxFDs - baseline.OpenFDs - 128)
		out.Notes = append(out.Notes, fmt.Sprintf("lowered to %d connections: the server's open-file limit is %d", n, baseline.MaxFDs))
	}
	if n < 1 {
		return fail(fmt.Errorf("sse-capacity: the open-file limits leave no room for connections"))
	}
	if len(e.opts.Sources) == 0 && n > 20000 {
		out.Notes = append(out.Notes, "no source addresses: one client address has about 28000 ephemeral ports")
	}
	e.prog.printf("sse-capacity: %d connections to %s at %.0f/s", n, url, p.RampRate)

	var (
		mu      sync.Mutex
		streams []*sse.Stream
		open    atomic.Int64
	)
	live := &loadgen.Live{}
	e.prog.status(func() string {
		return fmt.Sprintf("ramp: %d open, %d failed, %d dropped, %d in flight", open.Load(), live.Failed.Load(), live.Dropped.Load(), live.InFlight.Load())
	})
	var samples []capacitySample
	start := time.Now()
	sample := func() {
		samples = append(samples, capacitySample{
			Elapsed:     time.Since(start).Round(time.Millisecond).String(),
			Connections: open.Load(),
			Stats:       e.readStats(ctx, adminURL, pid),
		})
	}
	sample()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	ramp := time.Duration(float64(n) / p.RampRate * float64(time.Second))
	every := max(ramp/10, time.Second)
	go func() {
		defer close(sampled)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	connect, err := loadgen.Run(ctx, loadgen.Config{Rate: p.RampRate, Count: int64(n), MaxInFlight: 1000, Live: live},
		func(ctx context.Context, i int64, _ time.Time) error {
			s, err := e.dialer.Open(ctx, url, headers[int(i)%len(headers)], nil)
			if err != nil {
				return err
			}
			open.Add(1)
			mu.Lock()
			streams = append(streams, s)
			mu.Unlock()
			return nil
		})
	defer func() {
		_ = forEach(context.Background(), len(streams), 64, func(_ context.Context, i int) error {
			streams[i].Close()
			return nil
		})
	}()
	close(stopSampling)
	<-sampled
	if err != nil {
		return fail(err)
	}

	e.prog.status(func() string { return fmt.Sprintf("holding %d streams", open.Load()) })
	select {
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(p.Hold.D()):
	}
	var closed int64
	for _, s := range streams {
		select {
		case <-s.Done():
			closed++
		default:
		}
	}
	held := open.Load() - closed
	sample()
	final := samples[len(samples)-1].Stats
	f := capacityFigures{
		URL: url, Requested: p.Connections, Attempted: n, Opened: open.Load(), ClosedByServer: closed, Held: held,
		Connect: connect, Baseline: baseline, Final: final, Samples: samples, ToolFDLimit: e.opts.FDLimit,
		PerConnection: perConnection{
			RSSBytes:       per(final.RSSBytes, baseline.RSSBytes, held),
			HeapInuseBytes: per(final.HeapInuseBytes, baseline.HeapInuseBytes, held),
			FDs:            per(final.OpenFDs, baseline.OpenFDs, held),
			Goroutines:     per(final.Goroutines, baseline.Goroutines, held),
		},
	}
	out.Figures = f
	if connect.Failed > 0 {
		out.Notes = append(out.Notes, "connection failures: "+fmt.Sprint(connect.Errors))
	}
	out.Checks = []report.Check{
		{Target: "≤ 10 KB RSS per idle connection", Measured: fmt.Sprintf("%.1f KB RSS, %.1f KB heap per connection at %d connections", f.PerConnection.RSSBytes/1000, f.PerConnection.HeapInuseBytes/1000, held),
			Met: final.RSSBytes >= 0 && held > 0 && f.PerConnection.RSSBytes <= 10000},
		{Target: "every connection held, up to the fd limit", Measured: fmt.Sprintf("%d held of %d attempted (%d requested)", held, n, p.Connections),
			Met: held == int64(n)},
	}
	sampleRows := [][]string{}
	for _, s := range samples {
		sampleRows = append(sampleRows, []string{s.Elapsed, fmt.Sprint(s.Connections), bytesMiB(s.Stats.RSSBytes), bytesMiB(s.Stats.HeapInuseBytes),
			fmt.Sprint(s.Stats.OpenFDs), fmt.Sprint(s.Stats.Goroutines)})
	}
	out.Tables = []report.Table{
		{
			Title:   "Per connection (final − baseline) / held",
			Columns: []string{"held", "RSS", "heap in use", "fds", "goroutines", "closed by server", "connect failures", "dropped"},
			Rows: [][]string{{fmt.Sprint(held), fmt.Sprintf("%.0f B", f.PerConnection.RSSBytes), fmt.Sprintf("%.0f B", f.PerConnection.HeapInuseBytes),
				fmt.Sprintf("%.2f", f.PerConnection.FDs), fmt.Sprintf("%.2f", f.PerConnection.Goroutines), fmt.Sprint(closed), fmt.Sprint(connect.Failed), fmt.Sprint(connect.Dropped)}},
		},
		latencyTable("Time to connect (ms, from the scheduled time)", []string{"connect"}, []loadgen.Summary{connect.Latency}),
		{Title: "Server during the ramp", Columns: []string{"elapsed", "connections", "RSS", "heap in use", "fds", "goroutines"}, Rows: sampleRows},
	}
	return out
}

// per is (after − before) / n, or -1 when a figure is unknown.
func per(after, before, n int64) float64 {
	if after < 0 || before < 0 || n <= 0 {
		return -1
	}
	return float64(after-before) / float64(n)
}
