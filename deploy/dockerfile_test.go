package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// parseDockerfile parses the repository's Dockerfile with BuildKit's own parser (the one
// `docker build` runs) into its stages and the ARGs declared before the first FROM.
func parseDockerfile(t *testing.T) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	stages, args, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages, args
}

func stage(t *testing.T, stages []instructions.Stage, name string) instructions.Stage {
	t.Helper()
	for _, s := range stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return instructions.Stage{}
}

// productionEnv is the environment the production image sets (its ENV instructions).
func productionEnv(t *testing.T) map[string]string {
	t.Helper()
	stages, _ := parseDockerfile(t)
	env := map[string]string{}
	for _, c := range stage(t, stages, "production").Commands {
		if e, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range e.Env {
				env[kv.Key] = kv.Value
			}
		}
	}
	return env
}

func TestDockerfileHasBuilderDevAndProductionStagesWithProductionTheDefault(t *testing.T) {
	stages, _ := parseDockerfile(t)
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"builder", "dev", "production"}) {
		t.Fatalf("stages %v, want [builder dev production] (the last one is what `docker build` builds by default)", names)
	}
	if dev := stage(t, stages, "dev"); dev.BaseName != "builder" {
		t.Errorf("dev starts from %q, want builder (the toolchain with the modules downloaded)", dev.BaseName)
	}
}

func TestBuilderDownloadsModulesWithACacheMountBeforeCopyingTheSource(t *testing.T) {
	stages, _ := parseDockerfile(t)
	modules, download, source := -1, -1, -1
	for i, c := range stage(t, stages, "builder").Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			src := slices.Sorted(slices.Values(c.SourcePaths))
			switch {
			case slices.Equal(src, []string{"go.mod", "go.sum"}) && modules < 0:
				modules = i
			case slices.Contains(c.SourcePaths, ".") && source < 0:
				source = i
			default:
				if source < 0 {
					t.Errorf("builder copies %v before the source: only go.mod and go.sum may come first", c.SourcePaths)
				}
			}
		case *instructions.RunCommand:
			if download >= 0 || !strings.Contains(strings.Join(c.CmdLine, " "), "go mod download") {
				continue
			}
			download = i
			// Mounts are parsed when the command is expanded (with the build arguments, none here).
			if err := c.Expand(func(word string) (string, error) { return word, nil }); err != nil {
				t.Fatalf("RUN %s: %v", c.String(), err)
			}
			var cached bool
			for _, m := range instructions.GetMounts(c) {
				cached = cached || (m.Type == instructions.MountTypeCache && m.Target == "/go/pkg/mod")
			}
			if !cached {
				t.Error("`go mod download` does not use a cache mount on /go/pkg/mod")
			}
		}
	}
	if modules < 0 || download < 0 || source < 0 {
		t.Fatalf("builder: COPY go.mod go.sum at %d, RUN go mod download at %d, COPY . at %d: want all three", modules, download, source)
	}
	if !(modules < download && download < source) {
		t.Errorf("builder: COPY go.mod go.sum (%d), go mod download (%d), COPY . (%d) are out of order: the module layer must not depend on the source", modules, download, source)
	}
}

func TestProductionStageIsDistrolessNonRootAndHoldsOnlyTheBinary(t *testing.T) {
	stages, _ := parseDockerfile(t)
	prod := stage(t, stages, "production")
	if !strings.HasPrefix(prod.BaseName, "gcr.io/distroless/static") {
		t.Errorf("production starts from %q, want gcr.io/distroless/static (no shell, no package manager)", prod.BaseName)
	}
	var user, entrypoint string
	var health []string
	for _, c := range prod.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			t.Errorf("production runs %q: it has no shell, and nothing should be built there", c.String())
		case *instructions.CopyCommand:
			if c.From != "builder" {
				t.Errorf("production copies %v from %q: only the builder's output belongs there", c.SourcePaths, c.From)
			}
		case *instructions.AddCommand:
			t.Errorf("production adds %v: only the builder's output belongs there", c.SourcePaths)
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell || len(c.CmdLine) != 1 {
				t.Errorf("ENTRYPOINT %q: want the exec form naming the binary", c.CmdLine)
			} else {
				entrypoint = c.CmdLine[0]
			}
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("production runs as %q, want a non-root user", user)
	}
	var binary bool
	for _, c := range prod.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.DestPath == entrypoint {
			binary = true
		}
	}
	if entrypoint == "" || !binary {
		t.Errorf("ENTRYPOINT %q is not the binary copied from the builder", entrypoint)
	}
	// Docker runs the check inside the container, which has only the binary: it checks itself.
	if !slices.Equal(health, []string{"CMD", entrypoint, "healthcheck"}) {
		t.Errorf("HEALTHCHECK %q, want [CMD %s healthcheck]", health, entrypoint)
	}
}

func TestDockerfileBuildsWithTheGoVersionOfGoMod(t *testing.T) {
	_, args := parseDockerfile(t)
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for _, a := range args {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" {
				version = kv.ValueString()
			}
		}
	}
	if mod.Go == nil || version != mod.Go.Version {
		t.Errorf("Dockerfile builds with Go %q, go.mod asks for %v", version, mod.Go)
	}
}

func TestImageSetsOnlyVariablesTheBinaryReads(t *testing.T) {
	read := binaryEnv(t)
	for k := range productionEnv(t) {
		if !read[k] {
			t.Errorf("the production image sets %s, which the binary does not read", k)
		}
	}
}

func TestBuildContextHoldsEveryFileTheBuildReadsAndLeavesOutTheRest(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	ignored, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// Every Go and embedded file of the module that the binary is built from.
	list := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, "./cmd/piazza")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := append(strings.Fields(string(out)), filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	if len(needed) < 50 {
		t.Fatalf("go list found only %d files of the binary", len(needed))
	}
	for _, path := range needed {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			t.Fatal(err)
		}
		if excluded, _ := ignored.MatchesOrParentMatches(filepath.ToSlash(rel)); excluded {
			t.Errorf(".dockerignore leaves out %s, which the build reads", rel)
		}
	}
	for _, rel := range []string{".git/HEAD", ".infra/postgres/data", "data/user.db", "bin/piazza", "deploy/docker-compose.yml", "docs/architecture.md", "cmd/piazza/piazza.test"} {
		if excluded, _ := ignored.MatchesOrParentMatches(rel); !excluded {
			t.Errorf(".dockerignore sends %s to the builder, which the build does not need", rel)
		}
	}
}
