// Command piazza-bench is Piazza's load tool: it runs the scenarios of bench/scenario
// (sse-capacity, fanout, api-mix, dm) against the embedded default, which it builds and starts
// itself, or against a running deployment (--target-url), and writes one JSON and one
// Markdown file per run under bench/results/.
//
//	piazza-bench                          # every scenario, small size, embedded default
//	piazza-bench --size=large fanout      # one scenario at the size of the targets
//	piazza-bench --target-url=http://127.0.0.1:8080 --admin-url=http://127.0.0.1:9190 api-mix
//	piazza-bench --sse-url=https://other.example/events --sse-header='Authorization: Bearer x' sse-capacity
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piazza-social/piazza/bench/scenario"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "piazza-bench: %v\n", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("piazza-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: piazza-bench [flags] [scenario ...]\n\nscenarios: %s (none: all)\n\nflags:\n", strings.Join(scenario.Names, ", "))
		fs.PrintDefaults()
	}
	var (
		size       = fs.String("size", scenario.SizeSmall, "preset size: smoke (seconds), small (make bench), large (the project's targets)")
		outDir     = fs.String("out", "", "directory of the result files (default: bench/results of the repository)")
		piazzaBin  = fs.String("piazza-bin", "", "embedded mode: the piazza binary (default: built from ./cmd/piazza)")
		targetURLs = fs.String("target-url", "", "distributed mode: the gateways' public URLs, comma-separated (default: start the embedded default)")
		adminURLs  = fs.String("admin-url", "", "distributed mode: the gateways' admin URLs, comma-separated in the same order (server memory figures, profiles)")
		pids       = fs.String("target-pid", "", "distributed mode: the gateways' process ids, comma-separated (memory from /proc when no admin URL)")
		sseURL     = fs.String("sse-url", "", "sse-capacity: measure this SSE endpoint instead of Piazza's (no users are created)")
		ssePID     = fs.Int("sse-pid", 0, "sse-capacity with --sse-url: the server's process id, for its memory figures")
		sources    = fs.String("sources", "auto", "local source addresses of SSE connections: FIRST-LAST (e.g. 127.0.0.2-127.0.0.9), a comma list, none, or auto (127.0.0.2-127.0.0.9 for a loopback target)")
		profile    = fs.Bool("profile", false, "fanout and dm: save CPU and allocation profiles of the gateway next to the results (embedded: started with --pprof)")

		connections = fs.Int("connections", 0, "sse-capacity: streams to hold open (lowered to the open-file limits)")
		capUsers    = fs.Int("capacity-users", 0, "sse-capacity: accounts the streams are spread over")
		rampRate    = fs.Float64("ramp-rate", 0, "sse-capacity: connections opened per second")
		hold        = fs.Duration("hold", 0, "sse-capacity: how long the streams are held before the final figures")
		authors     = fs.Int("authors", 0, "fanout: authors")
		followers   = fs.Int("followers", 0, "fanout: followers (each follows every author and holds a stream)")
		postRate    = fs.Float64("post-rate", 0, "fanout: posts per second")
		duration    = fs.Duration("duration", 0, "fanout and dm: how long the load runs")
		rates       = fs.String("rates", "", "api-mix: arrival rates per second, comma-separated, in order")
		step        = fs.Duration("step", 0, "api-mix: duration of each rate")
		mixUsers    = fs.Int("mix-users", 0, "api-mix: users")
		pairs       = fs.Int("pairs", 0, "dm: pairs of users in conversation")
		msgRate     = fs.Float64("msg-rate", 0, "dm: messages per second")
	)
	var piazzaArgs, sseHeaders listFlag
	fs.Var(&piazzaArgs, "piazza-arg", "embedded mode: an extra flag for `piazza dev` (repeatable)")
	fs.Var(&sseHeaders, "sse-header", "sse-capacity with --sse-url: a request header 'Name: value' (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	params, err := scenario.Preset(*size)
	if err != nil {
		return err
	}
	setInt(&params.SSECapacity.Connections, *connections)
	setInt(&params.SSECapacity.Users, *capUsers)
	setFloat(&params.SSECapacity.RampRate, *rampRate)
	setDuration(&params.SSECapacity.Hold, *hold)
	setInt(&params.Fanout.Authors, *authors)
	setInt(&params.Fanout.Followers, *followers)
	setFloat(&params.Fanout.PostRate, *postRate)
	setDuration(&params.Fanout.Duration, *duration)
	setDuration(&params.DM.Duration, *duration)
	setDuration(&params.APIMix.Step, *step)
	setInt(&params.APIMix.Users, *mixUsers)
	setInt(&params.DM.Pairs, *pairs)
	setFloat(&params.DM.Rate, *msgRate)
	if *rates != "" {
		params.APIMix.Rates = nil
		for _, r := range strings.Split(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("--rates: %q is not a positive number", r)
			}
			params.APIMix.Rates = append(params.APIMix.Rates, v)
		}
	}

	names := fs.Args()
	if len(names) == 1 && names[0] == "all" {
		names = nil
	}
	for _, n := range names {
		if !slices.Contains(scenario.Names, n) {
			return fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(scenario.Names, ", "))
		}
	}

	opts := scenario.Options{
		Scenarios: names, Size: *size, Params: params, PiazzaArgs: piazzaArgs, Profile: *profile,
		TargetURLs: splitList(*targetURLs), AdminURLs: splitList(*adminURLs), SSEURL: *sseURL, SSEPID: *ssePID,
		Progress: stderr,
	}
	if opts.PIDs, err = parsePIDs(*pids); err != nil {
		return err
	}
	if len(opts.AdminURLs) > 0 && len(opts.TargetURLs) == 0 {
		return errors.New("--admin-url needs --target-url")
	}
	if len(sseHeaders) > 0 {
		opts.SSEHeader = http.Header{}
		for _, h := range sseHeaders {
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				return fmt.Errorf("--sse-header %q: want 'Name: value'", h)
			}
			opts.SSEHeader.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	opts.FDLimit, err = raiseOpenFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "piazza-bench: cannot raise the open-file limit: %v\n", err)
	}

	moduleDir, modErr := findModule()
	opts.ModuleDir = moduleDir
	opts.OutDir = *outDir
	if opts.OutDir == "" {
		if modErr != nil {
			return fmt.Errorf("--out is required outside the repository: %w", modErr)
		}
		opts.OutDir = filepath.Join(moduleDir, "bench", "results")
	}

	probe := opts.SSEURL
	if probe == "" && len(opts.TargetURLs) > 0 {
		probe = opts.TargetURLs[0]
	}
	if opts.Sources, err = parseSources(*sources, probe); err != nil {
		return err
	}

	if len(opts.TargetURLs) == 0 {
		opts.PiazzaBin = *piazzaBin
		if opts.PiazzaBin == "" {
			if modErr != nil {
				return fmt.Errorf("--piazza-bin is required outside the repository: %w", modErr)
			}
			dir, err := os.MkdirTemp("", "piazza-bench-bin-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			opts.PiazzaBin = filepath.Join(dir, "piazza")
			fmt.Fprintln(stderr, "building ./cmd/piazza")
			if err := target.Build(ctx, moduleDir, opts.PiazzaBin); err != nil {
				return err
			}
		}
	}

	start := time.Now()
	res, err := scenario.Run(ctx, opts)
	if res.JSONPath != "" {
		fmt.Fprintf(stdout, "\nresults (%s): %s\n         %s\n\n", time.Since(start).Round(time.Second), res.JSONPath, res.MDPath)
		for _, s := range res.Run.Scenarios {
			fmt.Fprintf(stdout, "%-13s %s %s\n", s.Name, s.Status, s.Reason)
			for _, c := range s.Checks {
				mark := "  "
				if c.Met {
					mark = "ok"
				}
				fmt.Fprintf(stdout, "  [%s] %s: %s\n", mark, c.Target, c.Measured)
			}
		}
	}
	return err
}

func setInt(dst *int, v int) {
	if v > 0 {
		*dst = v
	}
}

func setFloat(dst *float64, v float64) {
	if v > 0 {
		*dst = v
	}
}

func setDuration(dst *scenario.Duration, v time.Duration) {
	if v > 0 {
		*dst = scenario.Duration(v)
	}
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, strings.TrimRight(v, "/"))
		}
	}
	return out
}

func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, v := range splitList(s) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("--target-pid: %q is not a process id", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSources reads --sources. auto chooses 127.0.0.2-127.0.0.9 when the target (probe; the
// embedded default when empty) is on loopback.
func parseSources(s, probe string) ([]netip.Addr, error) {
	switch s {
	case "none", "":
		return nil, nil
	case "auto":
		if probe == "" {
			return sse.LoopbackSources(2, 9), nil
		}
		u, err := url.Parse(probe)
		if err != nil {
			return nil, fmt.Errorf("target URL %q: %w", probe, err)
		}
		ips, err := net.LookupIP(u.Hostname())
		if err == nil && len(ips) > 0 && ips[0].IsLoopback() && ips[0].To4() != nil {
			return sse.LoopbackSources(2, 9), nil
		}
		return nil, nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(first)
		b, err2 := netip.ParseAddr(last)
		if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("--sources %q: want FIRST-LAST IPv4 addresses", s)
		}
		var out []netip.Addr
		for x := a; x.Compare(b) <= 0 && len(out) < 256; x = x.Next() {
			out = append(out, x)
		}
		return out, nil
	}
	var out []netip.Addr
	for _, v := range splitList(s) {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("--sources: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// findModule returns the directory of the repository's go.mod, searching up from the working
// directory.
func findModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/piazza-social/piazza\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the piazza repository")
		}
		dir = parent
	}
}

// raiseOpenFileLimit lifts the soft limit on open files to the hard limit — every stream the
// tool holds is a descriptor — and returns the limit in force.
func raiseOpenFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, err
		}
	}
	return lim.Cur, nil
}
