package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/bench/loadgen"
	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

// fanoutFigures is what fanout measured.
type fanoutFigures struct {
	// Posts are the create-post requests: their own latency, failures and drops.
	Posts loadgen.Result `json:"posts"`
	// Events are counted per (follower, post): expected is posts accepted × followers.
	EventsExpected  int64 `json:"events_expected"`
	EventsDelivered int64 `json:"events_delivered"`
	EventsLost      int64 `json:"events_lost"`
	// EventsPending are events still arriving when the wait for them was cut short (Drain
	// "capped"): a backlog, not a loss.
	EventsPending int64  `json:"events_pending"`
	Drain         string `json:"drain"`
	Duplicates    int64  `json:"duplicates"`
	// Unmatched are events of posts whose creation the client did not see succeed.
	Unmatched int64 `json:"unmatched"`
	// Reconnects counts streams the server closed (reopened with Last-Event-ID).
	Reconnects        int64 `json:"reconnects"`
	ReconnectFailures int64 `json:"reconnect_failures"`
	Resyncs           int64 `json:"resyncs"`
	// Window runs from the first post accepted to the last event delivered.
	Window string `json:"window"`
	// EventsPerSecond is delivered events over Window, for the whole deployment.
	EventsPerSecond float64          `json:"events_per_s"`
	Gateways        []gatewayFigures `json:"gateways"`
	// LatencyFromAccepted runs from the client reading the 201 of a post to a follower's
	// event; LatencyFromScheduled from the post's scheduled time (so it includes the post's
	// own latency).
	LatencyFromAccepted  loadgen.Summary `json:"latency_from_accepted"`
	LatencyFromScheduled loadgen.Summary `json:"latency_from_scheduled"`
	WarmupComplete       bool            `json:"warmup_complete"`
}

// gatewayFigures are one gateway's part of a fan-out.
type gatewayFigures struct {
	URL             string  `json:"url"`
	Streams         int     `json:"streams"`
	EventsDelivered int64   `json:"events_delivered"`
	EventsPerSecond float64 `json:"events_per_s"`
	// ServerDeliveries is the gateway's own count of live notifications written during the
	// run (-1 without its admin metrics).
	ServerDeliveries int64        `json:"server_deliveries"`
	Before           target.Stats `json:"before"`
	After            target.Stats `json:"after"`
}

// runFanout: every follower follows every author and holds one stream; the authors post at
// p.PostRate for p.Duration; each post must reach every follower.
func runFanout(ctx context.Context, e *env, p FanoutParams) report.Scenario {
	out := report.Scenario{Config: p}
	fail := func(err error) report.Scenario { return failed(out, err) }
	if p.Authors < 1 || p.Followers < 1 || p.PostRate <= 0 || p.Duration <= 0 {
		return fail(fmt.Errorf("fanout: authors, followers, rate and duration must be positive: %+v", p))
	}
	e.prog.printf("fanout: %d authors, %d followers each, %.0f posts/s for %s: %.0f events/s offered",
		p.Authors, p.Followers, p.PostRate, p.Duration.D(), p.PostRate*float64(p.Followers))

	authors, err := e.signup(ctx, "a", p.Authors)
	if err != nil {
		return fail(err)
	}
	followers, err := e.signup(ctx, "f", p.Followers)
	if err != nil {
		return fail(err)
	}
	var follows atomic.Int64
	total := p.Authors * p.Followers
	e.prog.status(func() string { return fmt.Sprintf("following: %d/%d", follows.Load(), total) })
	err = forEach(ctx, total, 16, func(ctx context.Context, i int) error {
		f, a := followers[i/p.Authors], authors[i%p.Authors]
		if err := e.api(i).Follow(ctx, f.Token, a.Username); err != nil {
			return fmt.Errorf("%s follows %s: %w", f.Username, a.Username, err)
		}
		follows.Add(1)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	// The user.followed notifications are still being stored; wait for them, so that the
	// measurement does not share the server with that backlog.
	e.prog.status(func() string { return "waiting for the follow notifications to settle" })
	settled := waitFor(ctx, 2*time.Minute, 200*time.Millisecond, func() bool {
		for _, a := range authors {
			seq, err := e.api(0).LastSeq(ctx, a.Token)
			if err != nil || seq < int64(p.Followers) {
				return false
			}
		}
		return true
	})
	if !settled {
		out.Notes = append(out.Notes, "the follow notifications had not all been stored after 2 minutes; measured anyway")
	}

	var current atomic.Pointer[tracker]
	onEvent := func(who, gw int, ev sse.Event) {
		if ev.Type != "notification" {
			return
		}
		if id := jsonString([]byte(ev.Data), "post_id"); id != "" {
			current.Load().arrive(id, who, gw, ev.At)
		}
	}
	all := newBitset(p.Followers, true)
	post := func(ctx context.Context, tr *tracker, n int64, scheduled time.Time) error {
		a := authors[int(n)%p.Authors]
		id, err := e.api(int(n)).CreatePost(ctx, a.Token, fmt.Sprintf("bench fanout post %d by %s", n, a.Username))
		if err != nil {
			return err
		}
		tr.accept([]string{id}, scheduled, time.Now(), all, p.Followers, p.Followers)
		return nil
	}

	warm := newTracker(e.gateways())
	current.Store(warm)
	ls, err := e.listen(ctx, followers, onEvent)
	if err != nil {
		return fail(err)
	}
	defer ls.close()

	// Warm-up: one post per author, delivered to everyone, before anything is measured.
	e.prog.status(func() string {
		x, r, _, _, _ := warm.counts()
		return fmt.Sprintf("warm-up: %d/%d events", r, x)
	})
	for i := range p.Authors {
		if err := post(ctx, warm, int64(i), time.Now()); err != nil {
			return fail(fmt.Errorf("warm-up post: %w", err))
		}
	}
	warm.drain(ctx, p.Drain.D(), p.MaxDrain.D())
	wx, wr, _, _, _ := warm.counts()
	warmComplete := wr == wx

	tr := newTracker(e.gateways())
	current.Store(tr)
	before := make([]target.Stats, e.gateways())
	for i := range before {
		before[i] = e.stats(ctx, i)
	}
	live := &loadgen.Live{}
	e.prog.status(func() string {
		x, r, _, _, _ := tr.counts()
		return fmt.Sprintf("posting: %d posts ok, %d failed, %d dropped; events %d/%d; p99 %.1f ms",
			live.Completed.Load(), live.Failed.Load(), live.Dropped.Load(), r, x, tr.fromAccepted.Summary().P99)
	})
	profiled := make(chan []string, 1)
	if e.opts.Profile && e.dep.AdminURL(0) != "" {
		go func() { profiled <- e.profile(ctx, "fanout", p.Duration.D()) }()
	} else {
		profiled <- nil
	}
	posts, err := loadgen.Run(ctx, loadgen.Config{Rate: p.PostRate, Duration: p.Duration.D(), MaxInFlight: 256, Live: live},
		func(ctx context.Context, n int64, scheduled time.Time) error { return post(ctx, tr, n, scheduled) })
	if err != nil {
		return fail(err)
	}
	e.prog.status(func() string {
		x, r, _, _, _ := tr.counts()
		return fmt.Sprintf("draining: events %d/%d", r, x)
	})
	drained := tr.drain(ctx, p.Drain.D(), p.MaxDrain.D())
	out.Files = <-profiled

	expected, received, dups, _, unmatched := tr.counts()
	lost, pending := expected-received, int64(0)
	if drained == drainCapped {
		lost, pending = 0, expected-received
		out.Notes = append(out.Notes, fmt.Sprintf("%d events were still on their way when the wait ended after %s: the server had a backlog; they are not counted as lost", pending, p.MaxDrain.D()))
	}
	window := tr.window()
	f := fanoutFigures{
		Posts:                posts,
		EventsExpected:       expected,
		EventsDelivered:      received,
		EventsLost:           lost,
		EventsPending:        pending,
		Drain:                drained,
		Duplicates:           dups,
		Unmatched:            unmatched,
		Reconnects:           ls.reconnects.Load(),
		ReconnectFailures:    ls.failures.Load(),
		Resyncs:              ls.resyncs.Load(),
		Window:               window.Round(time.Millisecond).String(),
		EventsPerSecond:      perSecond(received, window),
		LatencyFromAccepted:  tr.fromAccepted.Summary(),
		LatencyFromScheduled: tr.fromScheduled.Summary(),
		WarmupComplete:       warmComplete,
	}
	for i := range e.gateways() {
		g := gatewayFigures{
			URL:              e.api(i).BaseURL(),
			Streams:          (p.Followers + e.gateways() - 1 - i) / e.gateways(),
			EventsDelivered:  tr.perGateway[i].Load(),
			EventsPerSecond:  perSecond(tr.perGateway[i].Load(), window),
			ServerDeliveries: -1,
			Before:           before[i],
			After:            e.stats(ctx, i),
		}
		if g.Before.SSEDeliveries >= 0 && g.After.SSEDeliveries >= 0 {
			g.ServerDeliveries = g.After.SSEDeliveries - g.Before.SSEDeliveries
		}
		f.Gateways = append(f.Gateways, g)
	}
	out.Figures = f
	if !warmComplete {
		out.Notes = append(out.Notes, fmt.Sprintf("warm-up delivered %d of %d events", wr, wx))
	}
	if posts.Dropped > 0 || posts.Failed > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d posts failed and %d were dropped (more than 256 in flight): the server did not keep up with %.0f posts/s", posts.Failed, posts.Dropped, p.PostRate))
	}

	lat := f.LatencyFromAccepted
	best := f.EventsPerSecond
	for _, g := range f.Gateways {
		best = max(best, g.EventsPerSecond)
	}
	out.Checks = []report.Check{
		{Target: "events lost = 0", Measured: fmt.Sprintf("%d lost, %d pending of %d", f.EventsLost, f.EventsPending, expected), Met: drained == drainComplete && expected > 0},
		{Target: "≥ 100000 events/s per gateway", Measured: fmt.Sprintf("%.0f events/s (offered %.0f)", best, p.PostRate*float64(p.Followers)), Met: best >= 100000},
		{Target: "p99 ≤ 50 ms (post accepted → follower's event)", Measured: fmt.Sprintf("p99 %.1f ms", lat.P99), Met: lat.Count > 0 && lat.P99 <= 50},
	}
	out.Tables = []report.Table{
		{
			Title:   "Delivery",
			Columns: []string{"posts ok", "posts failed", "posts dropped", "events expected", "delivered", "lost", "pending", "duplicates", "reconnects", "window", "events/s"},
			Rows: [][]string{{
				fmt.Sprint(posts.Completed), fmt.Sprint(posts.Failed), fmt.Sprint(posts.Dropped), fmt.Sprint(expected), fmt.Sprint(received),
				fmt.Sprint(f.EventsLost), fmt.Sprint(f.EventsPending), fmt.Sprint(dups), fmt.Sprint(f.Reconnects), f.Window, fmt.Sprintf("%.0f", f.EventsPerSecond),
			}},
		},
		latencyTable("Latency (ms)", []string{"post accepted → event", "post scheduled → event", "create post (from scheduled)"},
			[]loadgen.Summary{f.LatencyFromAccepted, f.LatencyFromScheduled, posts.Latency}),
		gatewayTable(f.Gateways),
	}
	return out
}

// profile takes a CPU profile of gateway 0 over the middle of a measurement lasting d, then
// an allocation profile, and returns the files written.
func (e *env) profile(ctx context.Context, name string, d time.Duration) []string {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(d / 5):
	}
	secs := max(int((d*3/5)/time.Second), 1)
	var files []string
	for _, p := range []struct{ kind, query string }{{"profile", fmt.Sprintf("seconds=%d", secs)}, {"allocs", ""}} {
		suffix := map[string]string{"profile": "cpu", "allocs": "allocs"}[p.kind]
		path := filepath.Join(e.opts.OutDir, fmt.Sprintf("%s-%s-%s.pprof", e.stamp, name, suffix))
		if err := target.Profile(ctx, e.http, e.dep.AdminURL(0), p.kind, p.query, path); err != nil {
			e.prog.printf("%s: profile: %v", name, err)
			continue
		}
		files = append(files, filepath.Base(path)) // next to the results
	}
	return files
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// latencyTable renders latency summaries, one row each.
func latencyTable(title string, names []string, sums []loadgen.Summary) report.Table {
	t := report.Table{Title: title, Columns: []string{"", "count", "p50", "p90", "p99", "p99.9", "max", "mean"}}
	for i, s := range sums {
		t.Rows = append(t.Rows, []string{names[i], fmt.Sprint(s.Count), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max), ms(s.Mean)})
	}
	return t
}

func ms(v float64) string { return fmt.Sprintf("%.2f", v) }

func gatewayTable(gs []gatewayFigures) report.Table {
	t := report.Table{Title: "Per gateway", Columns: []string{"gateway", "streams", "events", "events/s", "server deliveries", "RSS after", "heap after", "goroutines after"}}
	for _, g := range gs {
		t.Rows = append(t.Rows, []string{g.URL, fmt.Sprint(g.Streams), fmt.Sprint(g.EventsDelivered), fmt.Sprintf("%.0f", g.EventsPerSecond),
			fmt.Sprint(g.ServerDeliveries), bytesMiB(g.After.RSSBytes), bytesMiB(g.After.HeapInuseBytes), fmt.Sprint(g.After.Goroutines)})
	}
	return t
}

func bytesMiB(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
