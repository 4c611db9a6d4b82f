//go:build integration

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/piazza-social/piazza/bench/scenario"
	"github.com/piazza-social/piazza/bench/scenario/scenariotest"
	"github.com/piazza-social/piazza/bench/sse"
)

// The load tool's distributed mode must not rot either: every scenario at the smallest size
// against two gateways of a distributed deployment, with the gateways' figures read from their
// admin /metrics. Nothing here is about speed; the figures asserted are that every scenario ran
// and that fan-out and direct messages lost no event.
func TestLoadToolRunsEveryScenarioAgainstADistributedDeployment(t *testing.T) {
	// The tool signs up every user it needs from one address.
	d := startDistributed(t, "--signup-limit-per-address=100000/1m:100000", "--login-limit-per-address=100000/1m:100000")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	params, err := scenario.Preset(scenario.SizeSmoke)
	if err != nil {
		t.Fatal(err)
	}
	res, err := scenario.Run(ctx, scenario.Options{
		Size: scenario.SizeSmoke, Params: params,
		TargetURLs: []string{d.gw1.base, d.gw2.base},
		AdminURLs:  []string{"http://" + d.procs["gateway-1"].AdminAddr, "http://" + d.procs["gateway-2"].AdminAddr},
		Sources:    sse.LoopbackSources(2, 9), FDLimit: 1024,
		OutDir: t.TempDir(), ModuleDir: "..", Progress: scenariotest.Progress{T: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	scenariotest.CheckSmokeRun(t, res)
}
