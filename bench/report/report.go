// Package report writes the results of one benchmark run: a JSON document with every figure
// and the conditions it was measured under (machine, Go version, git commit, target,
// configuration), and a Markdown page with the same figures for people. Both are written next
// to each other under one name, so a run's two files are found together.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Status of a scenario.
const (
	StatusOK           = "ok"
	StatusNotAvailable = "not_available" // the deployment lacks what the scenario needs
	StatusFailed       = "failed"
)

// Run is one invocation of the tool.
type Run struct {
	Tool       string     `json:"tool"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at"`
	Machine    Machine    `json:"machine"`
	Git        Git        `json:"git"`
	Mode       string     `json:"mode"`
	Size       string     `json:"size"`
	Config     any        `json:"config"`
	Scenarios  []Scenario `json:"scenarios"`
}

// Machine is where the run took place (the client; on one machine, the server too).
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	GoVersion   string `json:"go_version"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel"`
	// FDLimit is the tool's open-file limit after raising its soft limit to the hard one.
	FDLimit uint64 `json:"fd_limit"`
	// LoadAverage is the 1-minute load average when the run started: other work on the
	// machine skews every figure.
	LoadAverage float64 `json:"load_average_1m"`
}

// Git is the commit the code was built from.
type Git struct {
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
}

// Scenario is the outcome of one scenario.
type Scenario struct {
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason,omitempty"`
	Duration string   `json:"duration"`
	Target   any      `json:"target,omitempty"`
	Config   any      `json:"config"`
	Figures  any      `json:"figures,omitempty"`
	Checks   []Check  `json:"checks,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Files    []string `json:"files,omitempty"`
	Tables   []Table  `json:"-"`
}

// Check compares one figure with the target the project set for it.
type Check struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// Table is a figure table of the Markdown page.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
}

// CollectMachine describes this machine. fdLimit is the open-file limit in force.
func CollectMachine(fdLimit uint64) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, FDLimit: fdLimit}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryBytes = kb * 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAverage, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// CollectGit returns the commit checked out in dir and whether the tree has changes.
func CollectGit(ctx context.Context, dir string) Git {
	out, err := gitCmd(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return Git{Commit: "unknown"}
	}
	g := Git{Commit: strings.TrimSpace(out)}
	if st, err := gitCmd(ctx, dir, "status", "--porcelain", "--untracked-files=no"); err == nil {
		g.Dirty = strings.TrimSpace(st) != ""
	}
	return g
}

func gitCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	return string(b), err
}

// Write writes r as <dir>/<name>.json and <dir>/<name>.md and returns their paths.
func Write(dir, name string, r Run) (jsonPath, mdPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jsonPath = filepath.Join(dir, name+".json")
	mdPath = filepath.Join(dir, name+".md")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return "", "", err
	}
	f, err := os.Create(mdPath)
	if err != nil {
		return "", "", err
	}
	if err := r.Markdown(f); err != nil {
		f.Close()
		return "", "", err
	}
	return jsonPath, mdPath, f.Close()
}

// Markdown renders r for people.
func (r Run) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# piazza-bench: %s, size %s, %s\n\n", r.Mode, r.Size, r.StartedAt.UTC().Format(time.RFC3339))
	dirty := ""
	if r.Git.Dirty {
		dirty = " (with uncommitted changes)"
	}
	m := r.Machine
	fmt.Fprintf(&b, "- commit `%s`%s\n", r.Git.Commit, dirty)
	fmt.Fprintf(&b, "- machine: %d cores (%s), %.1f GiB, %s %s/%s, kernel %s, open-file limit %d, load average %.2f at start\n",
		m.Cores, m.CPUModel, float64(m.MemoryBytes)/(1<<30), m.GoVersion, m.OS, m.Arch, m.Kernel, m.FDLimit, m.LoadAverage)
	fmt.Fprintf(&b, "- duration: %s\n\n", r.FinishedAt.Sub(r.StartedAt).Round(time.Second))

	b.WriteString("| scenario | status | target | measured | met |\n|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		if len(s.Checks) == 0 {
			fmt.Fprintf(&b, "| %s | %s | | %s | |\n", s.Name, s.Status, cell(s.Reason))
		}
		for _, c := range s.Checks {
			met := "no"
			if c.Met {
				met = "yes"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.Name, s.Status, cell(c.Target), cell(c.Measured), met)
		}
	}
	b.WriteString("\n")

	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "## %s\n\n", s.Name)
		fmt.Fprintf(&b, "Status: **%s**", s.Status)
		if s.Reason != "" {
			fmt.Fprintf(&b, " — %s", s.Reason)
		}
		fmt.Fprintf(&b, " (%s)\n\n", s.Duration)
		if s.Config != nil {
			c, _ := json.Marshal(s.Config)
			fmt.Fprintf(&b, "Configuration: `%s`\n\n", c)
		}
		for _, t := range s.Tables {
			if t.Title != "" {
				fmt.Fprintf(&b, "%s\n\n", t.Title)
			}
			fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(t.Columns, " | "), strings.Repeat("---|", len(t.Columns)))
			for _, row := range t.Rows {
				cells := make([]string, len(row))
				for i, c := range row {
					cells[i] = cell(c)
				}
				fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
			}
			b.WriteString("\n")
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, f := range s.Files {
			fmt.Fprintf(&b, "- file: `%s`\n", f)
		}
		if len(s.Notes) > 0 || len(s.Files) > 0 {
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
