package deploy_test

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runScript runs a script of the repository with bash, in dir, with the given PATH and stdin,
// and returns its combined output and exit status.
func runScript(t *testing.T, dir, path, stdin string, args ...string) (string, int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join(dir, "scripts", filepath.Base(args[0])))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, append([]string{script}, args[1:]...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir(), "LC_ALL=C"}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("%s: %v", args[0], err)
		return "", -1
	}
}

// sandbox returns a directory laid out like the repository with copies of the given scripts
// and files, so that a script that misbehaves can only harm the copy.
func sandbox(t *testing.T, scripts []string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range scripts {
		data, err := os.ReadFile(filepath.Join("..", "scripts", s))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "scripts", s), string(data), 0o755)
	}
	for name, content := range files {
		write(t, filepath.Join(dir, name), content, 0o644)
	}
	return dir
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file under dir to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		files[strings.TrimPrefix(path, dir)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fakeDocker is a stand-in for the docker CLI that answers from fixture files the way the real
// one does for the commands docker-cleanup.sh uses, honouring the label, volume and network
// filters, and records every removal in $FAKE_DOCKER/removed.
const fakeDocker = `#!/usr/bin/env bash
set -euo pipefail
fix="$(dirname "$0")/../fixture"
args=" $* "
filter_value() { # filter_value KEY: the value of --filter KEY=...
	local prev="" a
	for a in "$@"; do
		if [[ "$prev" == --filter && "$a" == "$KEY="* ]]; then echo "${a#"$KEY="}"; return; fi
		prev="$a"
	done
}
case "$1" in
info) exit 0 ;;
compose) cat "$fix/defined" ;;
ps)
	KEY=label project="$(filter_value "$@")"; project="${project#com.docker.compose.project=}"
	KEY=volume volume="$(filter_value "$@")"
	KEY=network network="$(filter_value "$@")"
	while IFS='|' read -r id proj name state service volumes networks; do
		[[ -z "$project" || "$proj" == "$project" ]] || continue
		[[ -z "$volume" || ",$volumes," == *",$volume,"* ]] || continue
		[[ -z "$network" || ",$networks," == *",$network,"* ]] || continue
		if [[ "$args" == *" -q "* ]]; then echo "$id"; else printf '%s\t%s\t%s\t%s\n' "$id" "$name" "$state" "$service"; fi
	done <"$fix/containers"
	;;
volume | network)
	if [[ "$2" == rm ]]; then echo "$1 $3" >>"$fix/removed"; exit 0; fi
	if [[ "$2" == inspect ]]; then echo "${@: -1}"; exit 0; fi
	KEY=label project="$(filter_value "$@")"; project="${project#com.docker.compose.project=}"
	while IFS='|' read -r name proj; do
		[[ -z "$project" || "$proj" == "$project" ]] && echo "$name"
	done <"$fix/$1s"
	;;
rm) echo "container ${@: -1}" >>"$fix/removed" ;;
*) echo "fake docker: unexpected: $*" >&2; exit 9 ;;
esac
`

// cleanupFixture lays out a Docker host holding a running stack of project piazza with
// leftovers, and another project's resources.
func cleanupFixture(t *testing.T) (dir, path string) {
	t.Helper()
	dir = sandbox(t, []string{"docker-cleanup.sh"}, map[string]string{
		"deploy/docker-compose.yml": "name: piazza\n",
		"fake/bin/docker":           fakeDocker,
		// id|project|name|state|service|volumes|networks
		"fake/fixture/containers": strings.Join([]string{
			"c-user|piazza|piazza-user-service-1|running|user-service|piazza_jwt-keys|piazza_default",
			"c-migr|piazza|piazza-postgres-migration-1|exited|postgres-migration|piazza_pg|piazza_default",
			"c-demo|piazza|piazza-demo-service-1|running|demo-service||piazza_default",
			"c-other|shop|shop-db-1|exited|db|shop_data|shop_default",
		}, "\n") + "\n",
		"fake/fixture/volumes":  "piazza_jwt-keys|piazza\npiazza_pg|piazza\npiazza_stale|piazza\nshop_data|shop\n",
		"fake/fixture/networks": "piazza_default|piazza\npiazza_old|piazza\nshop_default|shop\n",
		// demo-service was removed from the Compose file since it was started.
		"fake/fixture/defined": "user-service\npostgres-migration\n",
	})
	if err := os.Chmod(filepath.Join(dir, "fake/bin/docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "fake/bin") + ":" + os.Getenv("PATH")
}

func removed(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "fake/fixture/removed"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(string(data), " ", "="))
	slices.Sort(lines)
	return lines
}

func TestDockerCleanupRemovesOnlyTheProjectsLeftovers(t *testing.T) {
	dir, path := cleanupFixture(t)
	out, code := runScript(t, dir, path, "", "docker-cleanup.sh", "--yes")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The exited job and the container of a service no longer defined go, with the volume only
	// the job used, the unused volume and the unused network; the running stack keeps its
	// containers, the volumes and networks they use, and the other project keeps everything.
	want := []string{"container=c-demo", "container=c-migr", "network=piazza_old", "volume=piazza_pg", "volume=piazza_stale"}
	if got := removed(t, dir); !slices.Equal(got, want) {
		t.Fatalf("removed %v, want %v\noutput:\n%s", got, want, out)
	}
	for _, listed := range []string{"piazza-postgres-migration-1", "piazza-demo-service-1", "piazza_pg", "piazza_stale", "piazza_old"} {
		if !strings.Contains(out, listed) {
			t.Errorf("the output does not show %s among what it removes:\n%s", listed, out)
		}
	}
}

func TestDockerCleanupAsksFirstAndRemovesNothingUnlessTold(t *testing.T) {
	dir, path := cleanupFixture(t)
	out, code := runScript(t, dir, path, "n\n", "docker-cleanup.sh")
	if code != 0 || !strings.Contains(out, "Remove them? [y/N]") || !strings.Contains(out, "nothing removed") {
		t.Fatalf("exit %d, want the list, the question and 'nothing removed':\n%s", code, out)
	}
	if got := removed(t, dir); len(got) != 0 {
		t.Fatalf("answered no, yet removed %v", got)
	}
	out, code = runScript(t, dir, path, "y\n", "docker-cleanup.sh")
	if code != 0 || len(removed(t, dir)) != 5 {
		t.Fatalf("answered yes: exit %d, removed %v\n%s", code, removed(t, dir), out)
	}
}

func TestDockerCleanupSaysSoWhenDockerIsAbsent(t *testing.T) {
	dir := sandbox(t, []string{"docker-cleanup.sh"}, nil)
	// A PATH with the tools the script needs, and no docker.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"dirname", "sed"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runScript(t, dir, bin, "", "docker-cleanup.sh", "--yes")
	if code != 0 || !strings.Contains(out, "Docker is not installed") {
		t.Fatalf("exit %d, want 0 and a clear word that Docker is absent:\n%s", code, out)
	}
}

func TestRemoveServiceRefusesACoreServiceWithoutForce(t *testing.T) {
	files := map[string]string{
		"services/user/user.go": "package user\n",
		"process/config.go":     "package process\n\nvar Known = []string{\n\t\"user\",\n\t\"gateway\",\n}\n",
	}
	dir := sandbox(t, []string{"remove-service.sh"}, files)
	before := snapshot(t, dir)
	out, code := runScript(t, dir, os.Getenv("PATH"), "", "remove-service.sh", "user")
	if code == 0 || !strings.Contains(out, "core service") || !strings.Contains(out, "--force") {
		t.Fatalf("exit %d, want a refusal naming --force:\n%s", code, out)
	}
	if after := snapshot(t, dir); !maps.Equal(before, after) {
		t.Fatal("the refused removal changed files")
	}
	out, code = runScript(t, dir, os.Getenv("PATH"), "", "remove-service.sh", "nosuch")
	if code == 0 || !strings.Contains(out, "no service 'nosuch'") {
		t.Fatalf("removing a service that does not exist: exit %d\n%s", code, out)
	}
}

func TestAddServiceChangesNothingWhenItCannotProceed(t *testing.T) {
	files := map[string]string{
		// No marker lines: the registration points are missing.
		"process/config.go":                "package process\n\nvar Known = []string{\"user\", \"gateway\"}\n",
		"process/services.go":              "package process\n",
		"deploy/docker-compose.yml":        "services: {}\n",
		"deploy/prometheus/prometheus.yml": "scrape_configs: []\n",
		"services/user/user.go":            "package user\n",
	}
	dir := sandbox(t, []string{"add-service.sh"}, files)
	before := snapshot(t, dir)
	for _, tc := range []struct {
		name, want string
	}{
		{"Bad-Name", "is not a service name"},
		{"func", "Go keyword"},
		{"user", "already exists"},
		{"demo", "// scaffold:known"},
	} {
		out, code := runScript(t, dir, os.Getenv("PATH"), "", "add-service.sh", tc.name)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("add-service.sh %s: exit %d, want a failure mentioning %q:\n%s", tc.name, code, tc.want, out)
		}
	}
	if after := snapshot(t, dir); !maps.Equal(before, after) {
		t.Fatal("a refused add-service.sh changed files")
	}
}
