// Package scenario holds the load scenarios of piazza-bench and runs them against the
// embedded default, which it starts afresh for every scenario, or against a running
// deployment:
//
//   - sse-capacity: many idle event streams held open on one gateway, opened at a fixed rate
//     from several loopback source addresses; the gateway's memory, heap, descriptors and
//     goroutines per connection, and the time to connect. It can target any SSE URL with
//     given headers, to compare other SSE servers the same way.
//   - fanout: followers connected over SSE, authors posting at a fixed rate; events delivered
//     per second per gateway, the latency from a post being accepted to each follower's event,
//     and the events lost (which must be none: a follower whose stream is closed reconnects
//     with Last-Event-ID, as a browser does).
//   - api-mix: the DeathStarBench social-network mix (60 % home timeline, 30 % user timeline,
//     10 % compose post) at increasing arrival rates; the highest rate whose p99 stays
//     under 50 ms.
//   - dm: direct messages between pairs at a fixed rate; the latency from sending to the
//     recipient's event.
//
// Every scenario creates its own users and follow graph through the public API and drives its
// load open-loop (see bench/loadgen). The run is written as one JSON and one Markdown file
// (see bench/report).
package scenario

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/piazza-social/piazza/bench/client"
	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

// Names of the scenarios, in the order a full run takes them.
const (
	SSECapacity = "sse-capacity"
	Fanout      = "fanout"
	APIMix      = "api-mix"
	DM          = "dm"
)

// Names lists every scenario.
var Names = []string{SSECapacity, Fanout, APIMix, DM}

// Options is one run of the tool.
type Options struct {
	// Scenarios to run, in order; empty runs them all.
	Scenarios []string
	// Size names the preset of Params ("smoke", "small", "large"); Params holds the
	// parameters actually used (the preset with the caller's overrides).
	Size   string
	Params Params

	// Embedded mode (no TargetURLs): the piazza binary to start, afresh for each scenario,
	// and extra flags for it.
	PiazzaBin  string
	PiazzaArgs []string

	// Distributed mode: the gateways' public URLs, and optionally their admin URLs and
	// process ids (same order) for the server-side figures.
	TargetURLs []string
	AdminURLs  []string
	PIDs       []int

	// SSEURL and SSEHeader point sse-capacity at any SSE endpoint instead of Piazza's (no
	// users are created then); SSEPID, when known, gives that server's memory figures.
	SSEURL    string
	SSEHeader http.Header
	SSEPID    int

	// Sources are the local addresses SSE connections are made from, in turn; empty: the
	// system chooses.
	Sources []netip.Addr

	// Profile takes CPU and allocation profiles of the gateway during fanout and dm (its
	// admin must serve /debug/pprof; the embedded default is started with --pprof).
	Profile bool

	// OutDir receives the result files; ModuleDir is the repository (for the git commit).
	OutDir    string
	ModuleDir string
	// FDLimit is the tool's open-file limit (recorded, and a bound on sse-capacity).
	FDLimit uint64
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
}

// Result is a finished run and where it was written.
type Result struct {
	Run      report.Run
	JSONPath string
	MDPath   string
}

// Run runs the scenarios, writes the result files and returns them. A scenario that fails is
// recorded as failed and the others still run; the error is about the run itself (bad
// options, results not written) or ctx.
func Run(ctx context.Context, opts Options) (Result, error) {
	names := opts.Scenarios
	if len(names) == 0 {
		names = Names
	}
	for _, n := range names {
		if !slices.Contains(Names, n) {
			return Result{}, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(Names, ", "))
		}
	}
	embedded := len(opts.TargetURLs) == 0
	if embedded && opts.PiazzaBin == "" {
		return Result{}, errors.New("scenario: PiazzaBin is required without TargetURLs")
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	mode := "distributed"
	if embedded {
		mode = "embedded"
	}
	run := report.Run{
		Tool:      "piazza-bench",
		StartedAt: time.Now().UTC(),
		Machine:   report.CollectMachine(opts.FDLimit),
		Git:       report.CollectGit(ctx, opts.ModuleDir),
		Mode:      mode,
		Size:      opts.Size,
		Config:    runConfig{Params: opts.Params, PiazzaArgs: append(slices.Clone(target.BenchArgs), opts.PiazzaArgs...), Sources: opts.Sources, SSEURL: opts.SSEURL},
	}
	prefix := randomPrefix()
	stamp := run.StartedAt.Format("20060102T150405Z")
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		run.Scenarios = append(run.Scenarios, runOne(ctx, opts, name, prefix, stamp))
	}
	run.FinishedAt = time.Now().UTC()

	label := "all"
	if len(opts.Scenarios) > 0 {
		label = strings.Join(names, "+")
	}
	jsonPath, mdPath, err := report.Write(opts.OutDir, fmt.Sprintf("%s-%s-%s", stamp, mode, label), run)
	if err != nil {
		return Result{Run: run}, fmt.Errorf("scenario: write results: %w", err)
	}
	return Result{Run: run, JSONPath: jsonPath, MDPath: mdPath}, ctx.Err()
}

// runConfig is the run's configuration as recorded.
type runConfig struct {
	Params     Params       `json:"params"`
	PiazzaArgs []string     `json:"embedded_piazza_args,omitempty"`
	Sources    []netip.Addr `json:"source_addrs,omitempty"`
	SSEURL     string       `json:"sse_url,omitempty"`
}

// runOne runs one scenario on its own target: a fresh embedded process, or the deployment.
func runOne(ctx context.Context, opts Options, name, prefix, stamp string) report.Scenario {
	start := time.Now()
	prog := newProgress(opts.Progress, name)
	defer prog.stop()
	out := report.Scenario{Name: name}
	finish := func(s report.Scenario) report.Scenario {
		s.Name = name
		s.Duration = time.Since(start).Round(time.Millisecond).String()
		if s.Status == "" {
			s.Status = report.StatusOK
		}
		prog.status(nil)
		prog.printf("%s: %s in %s", name, s.Status, s.Duration)
		return s
	}

	dep := target.Deployment{Mode: "distributed", APIURLs: opts.TargetURLs, AdminURLs: opts.AdminURLs, PIDs: opts.PIDs}
	if len(opts.TargetURLs) == 0 {
		dir, err := os.MkdirTemp("", "piazza-bench-")
		if err != nil {
			return finish(failed(out, err))
		}
		defer os.RemoveAll(dir)
		prog.printf("%s: starting the embedded default", name)
		proc, err := target.StartEmbedded(ctx, target.EmbeddedConfig{
			Binary: opts.PiazzaBin, Dir: dir, Pprof: opts.Profile && (name == Fanout || name == DM), ExtraArgs: opts.PiazzaArgs,
		})
		if err != nil {
			return finish(failed(out, err))
		}
		dep = proc.Deployment()
		defer func() {
			if err := proc.Stop(); err != nil {
				prog.printf("%s: the embedded default did not stop cleanly: %v", name, err)
			}
		}()
	}
	hc := client.NewHTTPClient(1024)
	defer hc.CloseIdleConnections()
	e := &env{
		opts:   opts,
		dep:    dep,
		http:   hc,
		dialer: &sse.Dialer{LocalAddrs: opts.Sources},
		prefix: prefix + short[name],
		stamp:  stamp,
		prog:   prog,
	}
	for _, u := range dep.APIURLs {
		e.apis = append(e.apis, client.New(u, hc))
	}
	var s report.Scenario
	switch name {
	case SSECapacity:
		s = runSSECapacity(ctx, e, opts.Params.SSECapacity)
	case Fanout:
		s = runFanout(ctx, e, opts.Params.Fanout)
	case APIMix:
		s = runAPIMix(ctx, e, opts.Params.APIMix)
	case DM:
		s = runDM(ctx, e, opts.Params.DM)
	}
	s.Target = dep
	return finish(s)
}

// short abbreviates scenario names in user names.
var short = map[string]string{SSECapacity: "c", Fanout: "f", APIMix: "m", DM: "d"}

func failed(s report.Scenario, err error) report.Scenario {
	s.Status, s.Reason = report.StatusFailed, err.Error()
	return s
}

// env is what a scenario works with.
type env struct {
	opts   Options
	dep    target.Deployment
	apis   []*client.Client // one per gateway
	http   *http.Client
	dialer *sse.Dialer
	prefix string // of every user name of the scenario
	stamp  string // of the run, in the names of the files it writes
	prog   *progress
}

// api returns the client of gateway i (modulo their number).
func (e *env) api(i int) *client.Client { return e.apis[i%len(e.apis)] }

// gateways is the number of gateways.
func (e *env) gateways() int { return len(e.apis) }

// stats reads the server figures of gateway i.
func (e *env) stats(ctx context.Context, i int) target.Stats {
	return e.readStats(ctx, e.dep.AdminURL(i), e.dep.PID(i))
}

// readStats reads a server's figures by admin URL and pid; unknown ones are -1.
func (e *env) readStats(ctx context.Context, adminURL string, pid int) target.Stats {
	s, _ := target.ReadStats(ctx, e.http, adminURL, pid)
	return s
}

// userName is the i-th user of a role in this scenario: prefix, role letter, number.
func (e *env) userName(role string, i int) string { return fmt.Sprintf("%s%s%d", e.prefix, role, i) }

// signup creates n users of a role, concurrently, spread over the gateways.
func (e *env) signup(ctx context.Context, role string, n int) ([]client.Account, error) {
	accounts := make([]client.Account, n)
	var done atomic.Int64
	e.prog.status(func() string { return fmt.Sprintf("signing up %s users: %d/%d", role, done.Load(), n) })
	err := forEach(ctx, n, 16, func(ctx context.Context, i int) error {
		name := e.userName(role, i)
		a, err := e.api(i).Signup(ctx, name, "bench passphrase "+name)
		if err != nil {
			return fmt.Errorf("sign up %s: %w", name, err)
		}
		accounts[i] = a
		done.Add(1)
		return nil
	})
	return accounts, err
}

// forEach calls f for 0..n-1 with at most limit calls at once; the first error cancels the
// rest and is returned.
func forEach(ctx context.Context, n, limit int, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// randomPrefix makes the user names of a run unique, so runs can share a deployment.
func randomPrefix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	b[0] = 'b'
	for i := 1; i < len(b); i++ {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		b[i] = letters[n.Int64()]
	}
	return string(b)
}

// waitFor polls cond every interval until it holds, ctx ends or timeout passes; it reports
// whether cond held.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// progress prints what a scenario is doing: phase lines as they happen, and a status line
// every second while a status function is set.
type progress struct {
	w     io.Writer
	name  string
	start time.Time
	mu    sync.Mutex
	fn    func() string
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(w io.Writer, name string) *progress {
	p := &progress{w: w, name: name, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.mu.Lock()
			fn := p.fn
			p.mu.Unlock()
			if fn != nil {
				p.printf("%s: %s", p.name, fn())
			}
		}
	}
}

// status sets the function whose answer is printed every second (nil: none).
func (p *progress) status(fn func() string) {
	p.mu.Lock()
	p.fn = fn
	p.mu.Unlock()
}

// printf prints one line with the time since the scenario started.
func (p *progress) printf(format string, args ...any) {
	el := time.Since(p.start).Truncate(time.Second)
	fmt.Fprintf(p.w, "[%6s] %s\n", el, fmt.Sprintf(format, args...))
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
