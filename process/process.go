// Package process assembles one piazza process: from its validated Config it sets up telemetry
// and the admin server, builds the shared infrastructure once (the event bus, stores), starts
// the selected services, and shuts everything down in order on SIGINT/SIGTERM. It is the only
// package that knows every service; services never import each other.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/platform/admin"
	"github.com/piazza-social/piazza/platform/config"
	"github.com/piazza-social/piazza/platform/lifecycle"
	"github.com/piazza-social/piazza/platform/telemetry"
)

// Run runs the process described by cfg until ctx is cancelled or a part fails. A clean shutdown
// returns nil. cfg must have been validated.
func Run(ctx context.Context, cfg Config, version string, log *slog.Logger) error {
	started := time.Now()
	log = log.With(slog.String("instance_id", cfg.InstanceID))
	log.InfoContext(ctx, "starting", append([]any{
		slog.String("version", version), slog.String("mode", string(cfg.Mode)),
	}, attrsAny(config.Attrs(&cfg))...)...)

	// ---------------------------------------------------------------- telemetry and admin
	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName:    serviceName(cfg),
		ServiceVersion: version,
		InstanceID:     cfg.InstanceID,
		OTLPEndpoint:   cfg.OTLPEndpoint,
		SampleRatio:    cfg.TraceSampleRatio,
	}, log)
	if err != nil {
		return settingError("otlp-endpoint", "%v", err)
	}
	defer func() {
		// Flush after every part has stopped, so the spans of the drain itself are exported.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.WarnContext(sctx, "telemetry flush failed", "error", err)
		}
	}()
	adm := admin.New(admin.Config{Addr: cfg.AdminAddr, EnablePprof: cfg.Pprof}, tel.MetricsHandler(), log)

	// The admin server starts first and outlives the others: /healthz answers while the
	// process waits for its dependencies (e.g. a database schema the migration job has not
	// applied yet), /readyz says what it waits for, turns 503 as soon as shutdown begins so load
	// balancers stop sending traffic while the public server drains, and /metrics stays
	// scrapeable until the end.
	var starting atomic.Bool
	starting.Store(true)
	adm.AddCheck("startup", func(context.Context) error {
		if starting.Load() {
			return errors.New("starting")
		}
		return nil
	})
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	adminDone := make(chan error, 1)
	go func() { adminDone <- adm.Run(adminCtx) }()
	select {
	case <-adm.Listening():
	case err := <-adminDone:
		return settingError("admin-addr", "%v", err)
	}
	go func() {
		<-ctx.Done()
		adm.SetDraining()
	}()

	// ---------------------------------------------------------------- infrastructure
	infra, err := openInfrastructure(ctx, cfg, tel, log)
	if err != nil {
		return err
	}
	defer infra.Close(log)
	for name, check := range infra.checks {
		adm.AddCheck(name, check)
	}

	// ---------------------------------------------------------------- services
	g := lifecycle.New(log)
	if err := addServices(ctx, g, cfg, infra, adm, tel, log); err != nil {
		if ctx.Err() != nil {
			// Asked to stop while still waiting for a dependency (e.g. the schema job): that
			// is a clean shutdown, not a failure.
			log.InfoContext(ctx, "stopped before starting", "waiting_for", err.Error())
			return nil
		}
		return err
	}
	starting.Store(false)
	log.InfoContext(ctx, "started", "services", strings.Join(cfg.Services, ","),
		"admin_addr", adm.Addr(), "startup_ms", time.Since(started).Milliseconds())

	// ---------------------------------------------------------------- run
	runErr := g.Run(ctx)
	stopAdmin()
	if err := <-adminDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("admin: %w", err)
	}
	if runErr != nil {
		return runErr
	}
	log.InfoContext(ctx, "stopped")
	return nil
}

// serviceName is the OpenTelemetry service.name: "<name>-service" for a distributed process
// running one service (the production layout), "piazza" otherwise.
func serviceName(cfg Config) string {
	if cfg.Mode == Distributed && len(cfg.Services) == 1 {
		return cfg.Services[0] + "-service"
	}
	return "piazza"
}

func attrsAny(attrs []slog.Attr) []any {
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}
