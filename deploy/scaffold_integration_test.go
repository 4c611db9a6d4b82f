//go:build integration

package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The marker lines scripts/add-service.sh inserts at, and where a tree without them gets them
// (so that this test also runs on a tree that predates them).
var scaffoldMarkers = []struct {
	file, marker, after, insert string
}{
	{"process/services.go", "// scaffold:services", "\t\t{\"presence\", a.addPresence},\n",
		"\t\t// scaffold:services (scripts/add-service.sh adds new services above this line)\n"},
	{"deploy/prometheus/prometheus.yml", "# scaffold:targets", "        labels: {service: deadletter}\n",
		"      # scaffold:targets (scripts/add-service.sh adds new services above this line)\n"},
}

// inRepo runs a command in dir and fails the test, with its output, unless it succeeds.
func inRepo(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// copyWorkTree copies the files git sees in the repository (tracked and untracked, not
// ignored: the working tree as a clone plus the edits in progress would have it) into a new
// directory, and makes it a repository of its own with one commit, so that what a script
// changes shows in `git status` there and nowhere else.
func copyWorkTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	list := inRepo(t, root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(list, "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dst, rel), string(data), info.Mode().Perm())
	}
	addMissingMarkers(t, dst)
	git(t, dst, "init", "-q")
	git(t, dst, "add", "-A")
	git(t, dst, "commit", "-q", "-m", "before add-service.sh")
	return dst
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return inRepo(t, dir, "git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
}

// addMissingMarkers puts the marker lines into a copy that lacks them, where the main tree
// will have them.
func addMissingMarkers(t *testing.T, dir string) {
	t.Helper()
	edit := func(file string, f func(string) string) {
		path := filepath.Join(dir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("process/config.go", func(s string) string {
		if !strings.Contains(s, "// scaffold:known") {
			start := strings.Index(s, "var Known = []string{")
			end := start + strings.Index(s[start:], "}")
			var lines []string
			for _, name := range strings.Split(s[start+len("var Known = []string{"):end], ",") {
				if name = strings.TrimSpace(name); name != "" && name != `"gateway"` {
					lines = append(lines, "\t"+name+",\n")
				}
			}
			s = s[:start] + "var Known = []string{\n" + strings.Join(lines, "") +
				"\t// scaffold:known (scripts/add-service.sh adds new services above this line)\n\t\"gateway\",\n" + s[end:]
		}
		if !strings.Contains(s, "// scaffold:config") {
			s = strings.Replace(s, "\n\tPresenceTTL ", "\n\t// scaffold:config (scripts/add-service.sh adds the settings of new services above this line)\n\n\tPresenceTTL ", 1)
		}
		return s
	})
	for _, m := range scaffoldMarkers {
		edit(m.file, func(s string) string {
			if strings.Contains(s, m.marker) {
				return s
			}
			if !strings.Contains(s, m.after) {
				t.Fatalf("%s has no marker %q and no line %q to put it after", m.file, m.marker, m.after)
			}
			return strings.Replace(s, m.after, m.after+m.insert, 1)
		})
	}
	goroot := strings.TrimSpace(inRepo(t, dir, "go", "env", "GOROOT"))
	inRepo(t, dir, filepath.Join(goroot, "bin", "gofmt"), "-w", "process/config.go", "process/services.go")
}

// TestAddedServiceBuildsAndPassesItsTestsAndRemovingItLeavesNoTrace is the round trip the
// scripts promise: in a copy of the tree, add-service.sh demo, then the build, the linters
// and the tests of what it touched pass; remove-service.sh demo, then git sees no change.
func TestAddedServiceBuildsAndPassesItsTestsAndRemovingItLeavesNoTrace(t *testing.T) {
	dir := copyWorkTree(t)

	out := inRepo(t, dir, "scripts/add-service.sh", "demo")
	status := git(t, dir, "status", "--porcelain")
	for _, want := range []string{"proto/piazza/demo/", "gen/piazza/demo/", "services/demo/", "process/demo_service.go",
		"process/config.go", "process/services.go", "deploy/docker-compose.yml", "deploy/prometheus/prometheus.yml"} {
		if !strings.Contains(status, want) {
			t.Errorf("after add-service.sh, git status does not show %s:\n%s\n%s", want, status, out)
		}
	}

	inRepo(t, dir, "go", "build", "./...")
	inRepo(t, dir, "go", "vet", "./...")
	inRepo(t, dir, "go", "tool", "staticcheck", "./services/demo/...", "./process/...")
	// The new service's own tests, and the deployment's: its container is in the Compose file,
	// runs a known service, sets only variables the binary reads, and Prometheus scrapes it.
	tests := inRepo(t, dir, "go", "test", "-count=1", "./services/demo/...", "./deploy/")
	if !strings.Contains(tests, "ok  \tgithub.com/piazza-social/piazza/services/demo\t") {
		t.Errorf("the scaffolded test did not run:\n%s", tests)
	}

	inRepo(t, dir, "scripts/remove-service.sh", "demo")
	if status := git(t, dir, "status", "--porcelain", "--untracked-files=all"); status != "" {
		t.Fatalf("after remove-service.sh, the tree differs from before add-service.sh:\n%s\n%s", status, git(t, dir, "diff"))
	}
}
