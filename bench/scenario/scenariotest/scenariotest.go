// Package scenariotest checks the result files of a load-tool run in tests: that every scenario
// ran and wrote its figures, and that no event was lost. It asserts nothing about speed.
package scenariotest

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/scenario"
)

// CheckSmokeRun fails t unless res's result files are written, the machine is recorded, every
// scenario of scenario.Names ran in order and succeeded, and fanout and dm each delivered all
// of some events (none lost, none pending).
func CheckSmokeRun(t testing.TB, res scenario.Result) {
	t.Helper()
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
	if len(doc.Scenarios) != len(scenario.Names) {
		t.Fatalf("%d scenarios in the results, want %d", len(doc.Scenarios), len(scenario.Names))
	}
	for i, s := range doc.Scenarios {
		if s.Name != scenario.Names[i] {
			t.Errorf("scenario %d is %q, want %q", i, s.Name, scenario.Names[i])
		}
		if s.Status != report.StatusOK {
			t.Errorf("%s: %s %s", s.Name, s.Status, s.Reason)
			continue
		}
		if s.Name != scenario.Fanout && s.Name != scenario.DM {
			continue
		}
		var lost struct {
			Expected *int64 `json:"events_expected"`
			Lost     *int64 `json:"events_lost"`
			Pending  int64  `json:"events_pending"`
		}
		if err := json.Unmarshal(s.Figures, &lost); err != nil || lost.Expected == nil || lost.Lost == nil {
			t.Errorf("%s: no event counts in %s", s.Name, s.Figures)
			continue
		}
		if *lost.Expected == 0 || *lost.Lost != 0 || lost.Pending != 0 {
			t.Errorf("%s: %d lost and %d still pending of %d events, want every one of some delivered", s.Name, *lost.Lost, lost.Pending, *lost.Expected)
		}
	}
}

// Progress sends the tool's progress lines to the test log.
type Progress struct{ T testing.TB }

func (w Progress) Write(p []byte) (int, error) {
	w.T.Log(string(p))
	return len(p), nil
}
