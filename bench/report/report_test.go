package report

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWriteProducesTheJSONAndTheMarkdownOfARun(t *testing.T) {
	start := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	r := Run{
		Tool: "piazza-bench", StartedAt: start, FinishedAt: start.Add(time.Minute), Machine: CollectMachine(1024),
		Git: Git{Commit: "abc", Dirty: true}, Mode: "embedded", Size: "smoke",
		Scenarios: []Scenario{{
			Name: "fanout", Status: StatusOK, Duration: "1s", Config: map[string]int{"followers": 10},
			Figures: map[string]int{"events_lost": 0},
			Checks:  []Check{{Target: "events lost = 0", Measured: "0 lost | of 10", Met: true}},
			Tables:  []Table{{Title: "Delivery", Columns: []string{"a", "b"}, Rows: [][]string{{"1", "2"}}}},
		}, {Name: "dm", Status: StatusNotAvailable, Reason: "messaging is not served"}},
	}
	jsonPath, mdPath, err := Write(t.TempDir(), "run", r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil || back.Git.Commit != "abc" || len(back.Scenarios) != 2 || back.Machine.Cores == 0 {
		t.Fatalf("JSON does not hold the run: %v\n%s", err, b)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"commit `abc` (with uncommitted changes)",
		"| fanout | ok | events lost = 0 | 0 lost \\| of 10 | yes |",
		"| dm | not_available | | messaging is not served | |",
		"| a | b |\n|---|---|\n| 1 | 2 |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}
