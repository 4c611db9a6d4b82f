package scenario

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
	"github.com/piazza-social/piazza/bench/target"
)

// The harness must never rot: every scenario runs at the smallest size against a freshly
// built embedded default and writes its results. Nothing here is about speed; the one figure
// asserted is that fan-out loses no event (and direct messages none, once messaging is
// served).
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
	params, err := Preset(SizeSmoke)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Run(ctx, Options{
		Size: SizeSmoke, Params: params, PiazzaBin: bin, OutDir: out, ModuleDir: moduleDir,
		Sources: sse.LoopbackSources(2, 9), FDLimit: 1024, Progress: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{res.JSONPath, res.MDPath} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Fatalf("result file %s not written: %v", p, err)
		}
	}
	b, err := os.ReadFile(res.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Machine   report.Machine `json:"machine"`
		Scenarios []struct {
			Name    string          `json:"name"`
			Status  string          `json:"status"`
			Reason  string          `json:"reason"`
			Figures json.RawMessage `json:"figures"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("results are not JSON: %v", err)
	}
	if doc.Machine.Cores == 0 || doc.Machine.GoVersion == "" {
		t.Errorf("machine not recorded: %+v", doc.Machine)
	}
	if len(doc.Scenarios) != len(Names) {
		t.Fatalf("%d scenarios in the results, want %d", len(doc.Scenarios), len(Names))
	}
	for i, s := range doc.Scenarios {
		if s.Name != Names[i] {
			t.Errorf("scenario %d is %q, want %q", i, s.Name, Names[i])
		}
		ok := s.Status == report.StatusOK || s.Name == DM && s.Status == report.StatusNotAvailable
		if !ok {
			t.Errorf("%s: %s %s", s.Name, s.Status, s.Reason)
			continue
		}
		var lost struct {
			Expected *int64 `json:"events_expected"`
			Lost     *int64 `json:"events_lost"`
			Pending  int64  `json:"events_pending"`
		}
		if s.Name == Fanout || s.Name == DM && s.Status == report.StatusOK {
			if err := json.Unmarshal(s.Figures, &lost); err != nil || lost.Expected == nil || lost.Lost == nil {
				t.Errorf("%s: no event counts in %s", s.Name, s.Figures)
				continue
			}
			if *lost.Expected == 0 || *lost.Lost != 0 || lost.Pending != 0 {
				t.Errorf("%s: %d lost and %d still pending of %d events, want every one of some delivered", s.Name, *lost.Lost, lost.Pending, *lost.Expected)
			}
		}
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
