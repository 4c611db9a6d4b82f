// Command piazza is the single binary of the platform. `piazza dev` runs every service in one
// process on the embedded default; `piazza serve --services=...` runs the chosen services on the
// real infrastructure (one service per container in production).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/piazza-social/piazza/platform/config"
	"github.com/piazza-social/piazza/platform/lifecycle"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/process"
)

const usage = `usage: piazza <command> [flags]

commands:
  dev       run every service in one process on the embedded default (SQLite, in-process bus)
  serve     run the services named by --services on Kafka, Redis, PostgreSQL and Cassandra
  migrate   apply schema migrations as a one-shot job: postgres | cassandra | status ('piazza migrate help')
  dlq       list, show, replay and purge archived dead letters ('piazza dlq help')
  healthcheck  exit 0 when this machine's process answers 200 on /readyz (--admin-addr); the container health check
  version   print the build version

Run 'piazza <command> -h' for the flags of a command. Every flag can also be set through the
environment variable named in its help (PIAZZA_...).
`

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		// One clear line, not a stack trace: the logger may not exist yet (its level is a setting).
		fmt.Fprintf(os.Stderr, "piazza: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	var mode process.Mode
	switch cmd {
	case "dev":
		mode = process.Embedded
	case "serve":
		mode = process.Distributed
	case "migrate":
		return runMigrate(ctx, args, stdout, stderr, lookupEnv)
	case "dlq":
		return runDLQ(ctx, args, stdout, stderr, lookupEnv)
	case "healthcheck":
		return runHealthcheck(ctx, args, stdout, stderr, lookupEnv)
	case "version":
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	cfg := process.Config{Mode: mode}
	fs := flag.NewFlagSet("piazza "+cmd, flag.ContinueOnError)
	// The flag package would print usage on every mistake; only -h asks for it. A mistake is
	// reported once, as the one-line error.
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, &cfg, config.Source{Prefix: "PIAZZA", Args: args, LookupEnv: lookupEnv}); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage: piazza %s [flags]\n\n", cmd)
			fs.PrintDefaults()
		}
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := logging.New(stdout, logging.Config{Level: cfg.LogLevel})
	if limit, err := raiseOpenFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit", "error", err)
	} else if limit > 0 {
		log.Debug("open-file limit", "limit", limit)
	}
	return process.Run(ctx, cfg, version(), log)
}

// version is the module version and VCS revision recorded by the Go toolchain at build time.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
