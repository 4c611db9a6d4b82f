package deploy_test

import (
	"context"
	"flag"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/piazza-social/piazza/platform/config"
	"github.com/piazza-social/piazza/process"
)

// The Compose services the seed and the issue name; the tests and the README refer to them.
var requiredServices = []string{
	"kafka", "redis", "cassandra", "postgres",
	"postgres-migration", "messaging-migration",
	"user-service", "post-service", "notification-service", "presence-service",
	"deadletter-service", "messaging-service", "gateway-service-1", "gateway-service-2",
	"lb", "otel-collector", "loki", "tempo", "prometheus", "grafana",
}

// loadCompose loads docker-compose.yml as `docker compose` would: through the Compose
// specification's loader, which validates it against the specification's schema, resolves the
// anchors, merges and relative paths, and interpolates variables (here with none set, so every
// default applies).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// isPiazza tells whether the service runs the piazza binary: the production stage of the
// repository's Dockerfile (TestEveryServiceHasAPinnedImageOrBuildsTheRepository checks that
// every build uses that Dockerfile).
func isPiazza(s types.ServiceConfig) bool {
	return s.Build != nil && s.Build.Target == "production"
}

// isJob tells whether the service is a one-shot job (it runs to completion, never restarted).
func isJob(s types.ServiceConfig) bool { return s.Restart == "no" }

// binaryEnv returns the environment variables `piazza serve` reads: every variable the
// binary's own configuration loader asks for, so the set follows process.Config.
func binaryEnv(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg process.Config
	err := config.Load(fs, &cfg, config.Source{Prefix: "PIAZZA", LookupEnv: func(k string) (string, bool) {
		read[k] = true
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !read["PIAZZA_SERVICES"] || !read["OTEL_EXPORTER_OTLP_ENDPOINT"] {
		t.Fatalf("the configuration loader asked for %v: the way it names variables changed", slices.Sorted(maps.Keys(read)))
	}
	return read
}

func TestComposeFileLoadsAndHasEveryNamedService(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "piazza" {
		t.Errorf("project name %q, want piazza (scripts/docker-cleanup.sh selects by it)", p.Name)
	}
	for _, name := range requiredServices {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
}

func TestEveryServiceHasAPinnedImageOrBuildsTheRepository(t *testing.T) {
	p := loadCompose(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		switch {
		case s.Build != nil:
			if s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("%s builds %s/%s, want the repository's Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
			}
			if s.Build.Target != "production" && s.Build.Target != "builder" {
				t.Errorf("%s builds stage %q, want production (or builder for a tool job)", name, s.Build.Target)
			}
			if s.Image == "" {
				t.Errorf("%s builds without naming its image, so every such service would build its own", name)
			}
		case s.Image == "":
			t.Errorf("%s has neither image nor build", name)
		default:
			// A third-party image is pinned to a version: "latest" (or no tag) changes under us.
			ref := s.Image[strings.LastIndex(s.Image, "/")+1:]
			_, tag, ok := strings.Cut(ref, ":")
			if !ok || tag == "latest" || !strings.ContainsAny(tag, "0123456789") {
				t.Errorf("%s uses image %q, want a pinned version tag", name, s.Image)
			}
		}
	}
}

func TestPiazzaServicesEachRunOneKnownServiceAndCoverThemAll(t *testing.T) {
	p := loadCompose(t)
	running := map[string][]string{} // piazza service → Compose services running it
	for name, s := range p.Services {
		if !isPiazza(s) || isJob(s) {
			continue
		}
		if len(s.Command) != 2 || s.Command[0] != "serve" || !strings.HasPrefix(s.Command[1], "--services=") {
			t.Errorf("%s runs %q, want [serve --services=<one service>]", name, s.Command)
			continue
		}
		svc := strings.TrimPrefix(s.Command[1], "--services=")
		if !slices.Contains(process.Known, svc) {
			t.Errorf("%s runs %q, which process.Known does not list", name, svc)
		}
		if !strings.HasPrefix(name, svc+"-service") {
			t.Errorf("Compose service %s runs %s: name it %s-service", name, svc, svc)
		}
		if got := s.Labels["piazza.service"]; got != svc {
			t.Errorf("%s is labelled piazza.service=%q, want %q: its logs are attributed to the service by that label", name, got, svc)
		}
		running[svc] = append(running[svc], name)
	}
	for _, svc := range process.Known {
		if len(running[svc]) == 0 {
			t.Errorf("no container runs %s (scripts/add-service.sh adds one with the service)", svc)
		}
	}
	if n := len(running["gateway"]); n < 2 {
		t.Errorf("%d gateway instances, want at least 2 behind the load balancer", n)
	}
}

// containerEnv is the environment a piazza container starts with: the image's, then the
// service's.
func containerEnv(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	env := maps.Clone(productionEnv(t))
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("%s: variable %s has no value", s.Name, k)
			continue
		}
		env[k] = *v
	}
	return env
}

func TestPiazzaContainersSetOnlyVariablesTheBinaryReads(t *testing.T) {
	p := loadCompose(t)
	read := binaryEnv(t)
	for name, s := range p.Services {
		if !isPiazza(s) {
			continue
		}
		for k := range s.Environment {
			if !read[k] {
				t.Errorf("%s sets %s, which the binary does not read (a typo, or a setting that went away)", name, k)
			}
		}
	}
}

func TestEveryServiceConfigurationPassesTheBinarysValidation(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if !isPiazza(s) || isJob(s) || len(s.Command) == 0 || s.Command[0] != "serve" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			env := containerEnv(t, s)
			cfg := process.Config{Mode: process.Distributed}
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := config.Load(fs, &cfg, config.Source{Prefix: "PIAZZA", Args: s.Command[1:], LookupEnv: func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok
			}})
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				t.Fatalf("`piazza %s` with this environment would stop at start-up: %v", strings.Join(s.Command, " "), err)
			}
			// Other containers must be able to reach what it serves.
			for _, addr := range []string{cfg.AdminAddr, cfg.GRPCAddr, cfg.HTTPAddr} {
				if host, _, err := net.SplitHostPort(addr); err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
					t.Errorf("listens on %s: other containers cannot reach a loopback address", addr)
				}
			}
			// Each address it is given names a Compose service (host:port, port its gRPC port).
			for k, v := range s.Environment {
				if strings.HasSuffix(k, "_SERVICE_ADDR") {
					host, port, err := net.SplitHostPort(*v)
					if err != nil || p.Services[host].Name == "" || port != "9000" {
						t.Errorf("%s=%s does not name a Compose service on the gRPC port 9000", k, *v)
					}
				}
			}
		})
	}
}

func TestEveryLongRunningServiceIsHealthCheckedAndJobsAreNot(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		hc := s.HealthCheck
		if isJob(s) {
			if hc == nil || !hc.Disable {
				t.Errorf("job %s should disable the image's health check: it is judged by its exit status", name)
			}
			continue
		}
		if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
			t.Errorf("%s has no health check", name)
			continue
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: health check without interval, timeout and retries", name)
		}
		if isPiazza(s) && !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/piazza", "healthcheck"}) {
			t.Errorf("%s checks %q, want the binary's own `piazza healthcheck` (the image has no shell)", name, hc.Test)
		}
	}
}

func TestPiazzaContainersLogWhereTheCollectorReadsThem(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if !isPiazza(s) {
			continue
		}
		// The collector tails the json-file logs of the containers whose log lines carry
		// these labels (see otel-collector/config.yml).
		if s.Logging == nil || s.Logging.Driver != "json-file" {
			t.Errorf("%s does not log to json-file, which the collector reads", name)
			continue
		}
		labels := strings.Split(s.Logging.Options["labels"], ",")
		for _, want := range []string{"com.docker.compose.service", "piazza.service"} {
			if !slices.Contains(labels, want) {
				t.Errorf("%s: its log lines do not carry the label %s", name, want)
			}
		}
		if s.Labels["piazza.service"] == "" {
			t.Errorf("%s has no piazza.service label", name)
		}
	}
}

func TestMigrationJobsCompleteBeforeTheServicesThatNeedThem(t *testing.T) {
	p := loadCompose(t)
	jobs := []struct {
		job, command, store string
		needs               func(env types.MappingWithEquals) bool
	}{
		{"postgres-migration", "migrate postgres", "postgres", func(env types.MappingWithEquals) bool {
			for k := range env {
				if strings.HasSuffix(k, "_DATABASE_URL") {
					return true
				}
			}
			return false
		}},
		{"messaging-migration", "migrate cassandra", "cassandra", func(env types.MappingWithEquals) bool {
			_, ok := env["PIAZZA_CASSANDRA_HOSTS"]
			return ok
		}},
	}
	for _, j := range jobs {
		job, ok := p.Services[j.job]
		if !ok {
			t.Errorf("no %s job", j.job)
			continue
		}
		if !isJob(job) || strings.Join(job.Command, " ") != j.command {
			t.Errorf("%s runs %q (restart %q), want a one-shot `piazza %s`", j.job, job.Command, job.Restart, j.command)
		}
		if d, ok := job.DependsOn[j.store]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s must wait for %s to be healthy", j.job, j.store)
		}
		var dependents int
		for name, s := range p.Services {
			if name == j.job || !isPiazza(s) || isJob(s) || !j.needs(s.Environment) {
				continue
			}
			dependents++
			if d, ok := s.DependsOn[j.job]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s uses %s but does not wait for %s to complete successfully", name, j.store, j.job)
			}
			// The job migrates exactly the stores the service uses.
			for k, v := range s.Environment {
				if strings.HasSuffix(k, "_DATABASE_URL") || strings.HasPrefix(k, "PIAZZA_CASSANDRA_") {
					if jv, ok := job.Environment[k]; !ok || *jv != *v {
						t.Errorf("%s sets %s=%s but %s migrates %v", name, k, *v, j.job, deref(jv))
					}
				}
			}
		}
		if dependents == 0 {
			t.Errorf("no service waits for %s", j.job)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return "nothing"
	}
	return *p
}

func TestDependenciesWaitForTheRightCondition(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target := p.Services[dep]
			switch {
			case isJob(target):
				if d.Condition != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("%s → %s: a job is waited for until it completes successfully, not %s", name, dep, d.Condition)
				}
			case isPiazza(target):
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s → %s: a service is waited for until it is healthy (ready), not %s", name, dep, d.Condition)
				}
			}
		}
	}
	// A job that no service waits for would make `docker compose up --wait` report its
	// successful exit as a failure.
	for name, s := range p.Services {
		if !isJob(s) {
			continue
		}
		var adopted bool
		for _, other := range p.Services {
			d, ok := other.DependsOn[name]
			adopted = adopted || (ok && d.Condition == types.ServiceConditionCompletedSuccessfully)
		}
		if !adopted {
			t.Errorf("no service waits for job %s to complete", name)
		}
	}
	// The gateways need every service they call; the load balancer needs the gateways.
	for name, s := range p.Services {
		if !isPiazza(s) {
			continue
		}
		for k, v := range s.Environment {
			if host, _, ok := strings.Cut(*v, ":"); ok && strings.HasSuffix(k, "_SERVICE_ADDR") {
				if _, ok := s.DependsOn[host]; !ok {
					t.Errorf("%s calls %s (%s) without depending on it", name, host, k)
				}
			}
		}
	}
	for name := range p.Services {
		if strings.HasPrefix(name, "gateway-service") {
			if d, ok := p.Services["lb"].DependsOn[name]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("lb does not wait for %s to be healthy", name)
			}
		}
	}
}

func TestLoadBalancerServesEveryGatewayAndStreamsEventsUnbuffered(t *testing.T) {
	p := loadCompose(t)
	var mounted bool
	for _, v := range p.Services["lb"].Volumes {
		mounted = mounted || (v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, "nginx/nginx.conf") && v.Target == "/etc/nginx/nginx.conf")
	}
	if !mounted {
		t.Error("lb does not mount nginx/nginx.conf as its configuration")
	}
	conf, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	var gateways []string
	for name := range p.Services {
		if strings.HasPrefix(name, "gateway-service") {
			gateways = append(gateways, name)
		}
	}
	upstream := regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9-]+):8080\b`).FindAllStringSubmatch(text, -1)
	var servers []string
	for _, m := range upstream {
		servers = append(servers, m[1])
	}
	slices.Sort(gateways)
	slices.Sort(servers)
	if !slices.Equal(gateways, servers) {
		t.Errorf("nginx balances over %v, want every gateway container %v", servers, gateways)
	}
	block := regexp.MustCompile(`(?s)location\s*=?\s*/v1/events\s*\{(.*?)\}`).FindStringSubmatch(text)
	if block == nil {
		t.Fatal("nginx.conf has no location for /v1/events")
	}
	for _, want := range []string{`proxy_buffering\s+off;`, `proxy_cache\s+off;`, `gzip\s+off;`, `proxy_read_timeout\s+(\d+h|[0-9]{4,}s?);`} {
		if !regexp.MustCompile(want).MatchString(block[1]) {
			t.Errorf("the /v1/events location lacks %s", want)
		}
	}
	// HTTP/1.1 with no Connection: close, so a stream is one long response.
	for _, want := range []string{`proxy_http_version\s+1\.1;`, `proxy_set_header\s+Connection\s+"";`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("nginx.conf lacks %s", want)
		}
	}
}

func TestConfigurationFilesMountedFromThisDirectoryExist(t *testing.T) {
	p := loadCompose(t)
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, dir+string(filepath.Separator)) {
				continue // named volumes, and host paths such as the Docker log directory
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s writable: configuration is read-only", name, v.Source)
			}
		}
	}
}

func TestPrometheusScrapesEveryPiazzaContainer(t *testing.T) {
	p := loadCompose(t)
	data, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range conf.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("prometheus.yml: target %q is not host:port", target)
					continue
				}
				scraped[target] = true
				if _, ok := p.Services[host]; !ok && host != "localhost" {
					t.Errorf("prometheus.yml scrapes %s, which is no Compose service", target)
				}
			}
		}
	}
	for name, s := range p.Services {
		if isPiazza(s) && !isJob(s) && !scraped[name+":9090"] {
			t.Errorf("prometheus.yml does not scrape %s:9090 (its admin address)", name)
		}
	}
}
