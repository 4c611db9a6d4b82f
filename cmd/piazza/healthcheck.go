package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/piazza-social/piazza/platform/config"
)

// healthcheckConfig is what `piazza healthcheck` needs to find the process it checks. It reads
// the same PIAZZA_ADMIN_ADDR as that process, so inside a container (whose environment both
// share) the check finds the admin server without being told.
type healthcheckConfig struct {
	AdminAddr string `flag:"admin-addr" default:"127.0.0.1:9090" help:"admin address of the process to check (its own --admin-addr; a wildcard host means this machine)"`
}

// healthcheckPaths maps --probe to the admin endpoint it asks.
var healthcheckPaths = map[string]string{
	"ready": "/readyz", // serving, every dependency answering, not draining
	"live":  "/healthz",
}

// healthcheckBodyLimit bounds how much of an unhealthy answer is quoted: /readyz names the
// failing checks, which is what an operator reading `docker inspect` wants to see.
const healthcheckBodyLimit = 512

// runHealthcheck runs `piazza healthcheck`: it asks the admin server of the process on this
// machine whether it is ready (or, with --probe=live, alive) and returns nil only on 200. It is
// the container health check of the production image, which has no shell and no curl: the
// binary checks itself. Any other answer, or none within --timeout, is an error whose one line
// says what was asked and what came back; main turns it into exit status 1 (Docker's
// "unhealthy").
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	var cfg healthcheckConfig
	fs := flag.NewFlagSet("piazza healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, &cfg, config.Source{Prefix: "PIAZZA", LookupEnv: lookupEnv}); err != nil {
		return err
	}
	// These two describe the check, not the process, so they have no environment variable.
	probe := fs.String("probe", "ready", "ready (GET /readyz: serving and every dependency answering) or live (GET /healthz: the process serves HTTP)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, "usage: piazza healthcheck [flags]\n\nExits 0 when the admin server of the local process answers 200, 1 otherwise.\n\n")
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	path, ok := healthcheckPaths[*probe]
	if !ok {
		return fmt.Errorf("healthcheck: --probe must be ready or live, got %q", *probe)
	}
	if *timeout <= 0 {
		return errors.New("healthcheck: --timeout must be positive")
	}
	host, err := localAddr(cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("PIAZZA_ADMIN_ADDR (--admin-addr): %v", err)
	}
	url := "http://" + host + path

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	// A fresh transport: no proxy from the environment (the admin port is local) and no
	// connection kept for a process that exits right after.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err) // names the method and the URL
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthcheckBodyLimit))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s: %s", url, resp.Status, oneLine(string(bytes.TrimSpace(body)), healthcheckBodyLimit))
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return nil
}

// localAddr turns a listen address into one to dial on this machine: a wildcard or empty host
// (how a container listens) becomes the loopback address of the same family.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("%q has no fixed port to check", listen)
	}
	switch {
	case host == "" || host == "0.0.0.0":
		host = "127.0.0.1"
	case host == "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
