package process

import (
	"context"
	"log/slog"

	"github.com/piazza-social/piazza/platform/lifecycle"
	"github.com/piazza-social/piazza/platform/telemetry"
	"github.com/piazza-social/piazza/services/gateway"
)

// addServices builds the services cfg selects and adds each to g.
func addServices(_ context.Context, g *lifecycle.Group, cfg Config, _ *infrastructure, tel *telemetry.Telemetry, log *slog.Logger) error {
	if cfg.Runs("gateway") {
		gw := gateway.New(gateway.Config{
			Addr:            cfg.HTTPAddr,
			RequestTimeout:  cfg.RequestTimeout,
			MaxBodyBytes:    cfg.MaxBodyBytes,
			ShutdownTimeout: cfg.ShutdownTimeout,
			TracerProvider:  tel.TracerProvider(),
			MeterProvider:   tel.MeterProvider(),
			Propagator:      tel.Propagator(),
		}, log)
		g.Add("gateway", gw.Run)
	}
	return nil
}
