package scenario_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/piazza-social/piazza/bench/scenario"
	"github.com/piazza-social/piazza/bench/scenario/scenariotest"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

// The harness must never rot: every scenario runs at the smallest size against a freshly
// built embedded default and writes its results. Nothing here is about speed; the one figure
// asserted is that fan-out and direct messages lose no event.
func TestEveryScenarioRunsAtSmokeSizeAndWritesItsResults(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	moduleDir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "piazza")
	// -race: the server is checked for races under the harness's load too, and the build
	// shares its compiled packages with the end-to-end tests' race build.
	if err := target.Build(ctx, moduleDir, bin, "-race"); err != nil {
		t.Fatal(err)
	}
	params, err := scenario.Preset(scenario.SizeSmoke)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := scenario.Run(ctx, scenario.Options{
		Size: scenario.SizeSmoke, Params: params, PiazzaBin: bin, OutDir: out, ModuleDir: moduleDir,
		Sources: sse.LoopbackSources(2, 9), FDLimit: 1024, Progress: scenariotest.Progress{T: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	scenariotest.CheckSmokeRun(t, res)
}
