package scenario

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/bench/client"
	"github.com/piazza-social/piazza/bench/loadgen"
	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
)

// dmFigures is what dm measured.
type dmFigures struct {
	// Sends are the send-message requests: their own latency, failures and drops.
	Sends             loadgen.Result `json:"sends"`
	Expected          int64          `json:"events_expected"`
	Delivered         int64          `json:"events_delivered"`
	Lost              int64          `json:"events_lost"`
	Pending           int64          `json:"events_pending"`
	Drain             string         `json:"drain"`
	Duplicates        int64          `json:"duplicates"`
	Extra             int64          `json:"extra"`
	Unmatched         int64          `json:"unmatched"`
	Reconnects        int64          `json:"reconnects"`
	ReconnectFailures int64          `json:"reconnect_failures"`
	Resyncs           int64          `json:"resyncs"`
	// LatencyFromSend runs from a message's scheduled send time to the recipient's event;
	// LatencyFromAccepted from the client reading the send's answer.
	LatencyFromSend     loadgen.Summary `json:"latency_from_send"`
	LatencyFromAccepted loadgen.Summary `json:"latency_from_accepted"`
	WarmupComplete      bool            `json:"warmup_complete"`
}

// runDM: pairs of users, each in a conversation, both holding a stream; messages go back and
// forth at p.Rate for p.Duration; each must reach its recipient.
func runDM(ctx context.Context, e *env, p DMParams) report.Scenario {
	out := report.Scenario{Config: p}
	fail := func(err error) report.Scenario { return failed(out, err) }
	notAvailable := func(err error) report.Scenario {
		out.Status = report.StatusNotAvailable
		out.Reason = fmt.Sprintf("messaging is not served by this deployment (%v)", err)
		return out
	}
	if p.Pairs < 1 || p.Rate <= 0 || p.Duration <= 0 {
		return fail(fmt.Errorf("dm: pairs, rate and duration must be positive: %+v", p))
	}
	users, err := e.signup(ctx, "p", 2*p.Pairs)
	if err != nil {
		return fail(err)
	}
	convs := make([]string, p.Pairs)
	// The first conversation alone: a deployment without messaging says so at once.
	if convs[0], err = e.api(0).CreateConversation(ctx, users[0].Token, []string{users[1].Username}); err != nil {
		if client.Unavailable(err) {
			return notAvailable(err)
		}
		return fail(err)
	}
	var done atomic.Int64
	e.prog.status(func() string { return fmt.Sprintf("creating conversations: %d/%d", done.Load(), p.Pairs) })
	err = forEach(ctx, p.Pairs-1, 16, func(ctx context.Context, i int) error {
		i++
		id, err := e.api(i).CreateConversation(ctx, users[2*i].Token, []string{users[2*i+1].Username})
		convs[i] = id
		done.Add(1)
		return err
	})
	if err != nil {
		return fail(err)
	}

	var current atomic.Pointer[tracker]
	onEvent := func(who, gw int, ev sse.Event) {
		data := []byte(ev.Data)
		key := jsonString(data, "client_msg_id")
		if key == "" {
			key = jsonString(data, "message_id")
		}
		if key != "" {
			current.Load().arrive(key, who, gw, ev.At)
		}
	}
	universe := 2 * p.Pairs
	// tag tells the warm-up's client message ids from the measurement's.
	send := func(ctx context.Context, tr *tracker, tag string, n int64, scheduled time.Time) error {
		pair := int(n % int64(p.Pairs))
		dir := int(n/int64(p.Pairs)) % 2
		from, to := 2*pair+dir, 2*pair+1-dir
		cmid := fmt.Sprintf("%s%s-%d", e.prefix, tag, n)
		id, err := e.api(from).SendMessage(ctx, users[from].Token, convs[pair], fmt.Sprintf("bench message %d", n), cmid)
		if err != nil {
			return err
		}
		expect := newBitset(universe, false)
		expect[to/64] |= 1 << (to % 64)
		keys := []string{cmid}
		if id != "" {
			keys = append(keys, id)
		}
		tr.accept(keys, scheduled, time.Now(), expect, universe, 1)
		return nil
	}

	warm := newTracker(e.gateways())
	current.Store(warm)
	ls, err := e.listen(ctx, users, onEvent)
	if err != nil {
		return fail(err)
	}
	defer ls.close()
	e.prog.status(func() string {
		x, r, _, _, _ := warm.counts()
		return fmt.Sprintf("warm-up: %d/%d messages", r, x)
	})
	for i := range p.Pairs {
		if err := send(ctx, warm, "w", int64(i), time.Now()); err != nil {
			if client.Unavailable(err) {
				return notAvailable(err)
			}
			return fail(fmt.Errorf("warm-up message: %w", err))
		}
	}
	warm.drain(ctx, p.Drain.D(), p.MaxDrain.D())
	wx, wr, _, _, _ := warm.counts()

	tr := newTracker(e.gateways())
	current.Store(tr)
	live := &loadgen.Live{}
	e.prog.status(func() string {
		x, r, _, _, _ := tr.counts()
		return fmt.Sprintf("sending: %d ok, %d failed, %d dropped; delivered %d/%d; p99 %.1f ms",
			live.Completed.Load(), live.Failed.Load(), live.Dropped.Load(), r, x, tr.fromScheduled.Summary().P99)
	})
	profiled := make(chan []string, 1)
	if e.opts.Profile && e.dep.AdminURL(0) != "" {
		go func() { profiled <- e.profile(ctx, "dm", p.Duration.D()) }()
	} else {
		profiled <- nil
	}
	sends, err := loadgen.Run(ctx, loadgen.Config{Rate: p.Rate, Duration: p.Duration.D(), MaxInFlight: 256, Live: live},
		func(ctx context.Context, n int64, scheduled time.Time) error { return send(ctx, tr, "m", n, scheduled) })
	out.Files = <-profiled
	if err != nil {
		return fail(err)
	}
	e.prog.status(func() string {
		x, r, _, _, _ := tr.counts()
		return fmt.Sprintf("draining: %d/%d", r, x)
	})
	drained := tr.drain(ctx, p.Drain.D(), p.MaxDrain.D())

	expected, received, dups, extra, unmatched := tr.counts()
	lost, pending := expected-received, int64(0)
	if drained == drainCapped {
		lost, pending = 0, expected-received
		out.Notes = append(out.Notes, fmt.Sprintf("%d messages were still on their way when the wait ended after %s: the server had a backlog; they are not counted as lost", pending, p.MaxDrain.D()))
	}
	f := dmFigures{
		Sends: sends, Expected: expected, Delivered: received, Lost: lost, Pending: pending, Drain: drained, Duplicates: dups, Extra: extra,
		Unmatched: unmatched, Reconnects: ls.reconnects.Load(), ReconnectFailures: ls.failures.Load(), Resyncs: ls.resyncs.Load(),
		LatencyFromSend: tr.fromScheduled.Summary(), LatencyFromAccepted: tr.fromAccepted.Summary(), WarmupComplete: wr == wx,
	}
	out.Figures = f
	if wr != wx {
		out.Notes = append(out.Notes, fmt.Sprintf("warm-up delivered %d of %d messages", wr, wx))
	}
	if len(sends.Errors) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("send errors: %v", sends.Errors))
	}
	lat := f.LatencyFromSend
	out.Checks = []report.Check{
		{Target: "messages lost = 0", Measured: fmt.Sprintf("%d lost, %d pending of %d", f.Lost, f.Pending, expected), Met: drained == drainComplete && expected > 0},
		{Target: "p99 ≤ 50 ms at 500 msg/s (send → recipient's event)", Measured: fmt.Sprintf("p99 %.1f ms at %.0f msg/s", lat.P99, p.Rate),
			Met: lat.Count > 0 && lat.P99 <= 50 && p.Rate >= 500 && sends.Dropped == 0},
	}
	out.Tables = []report.Table{
		{
			Title:   "Delivery",
			Columns: []string{"sent ok", "failed", "dropped", "expected", "delivered", "lost", "pending", "duplicates", "extra", "reconnects"},
			Rows: [][]string{{fmt.Sprint(sends.Completed), fmt.Sprint(sends.Failed), fmt.Sprint(sends.Dropped), fmt.Sprint(expected),
				fmt.Sprint(received), fmt.Sprint(f.Lost), fmt.Sprint(f.Pending), fmt.Sprint(dups), fmt.Sprint(extra), fmt.Sprint(f.Reconnects)}},
		},
		latencyTable("Latency (ms)", []string{"send (scheduled) → recipient's event", "send accepted → recipient's event", "send request"},
			[]loadgen.Summary{f.LatencyFromSend, f.LatencyFromAccepted, sends.Latency}),
	}
	return out
}
