//go:build integration

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// dashboards are the Grafana dashboards whose every PromQL expression must find series.
var dashboards = []string{"../deploy/grafana/dashboards/overview.json", "../deploy/grafana/dashboards/services.json"}

// datasourcesFile provisions the datasources the dashboards name by uid.
const datasourcesFile = "../deploy/grafana/provisioning/datasources/datasources.yml"

// promRateInterval stands in for Grafana's $__rate_interval: longer than the whole scenario,
// so a counter touched once has its samples in the window.
const promRateInterval = "2m"

// TestDashboardQueriesFindSeriesInARealPrometheus runs the distributed deployment, scraped by a
// real Prometheus with the repository's scrape configuration, drives the traffic the dashboards
// are about (sign-ups, a follow, a post delivered over SSE, a replay, a not-found, a dead
// letter), then evaluates every PromQL expression of the dashboards and fails on each that
// returns no series: a metric renamed in the code, or a query mistyped in a dashboard, shows up
// here rather than as an empty panel. Latency panels marked for exemplars must find exemplars
// carrying a trace id.
func TestDashboardQueriesFindSeriesInARealPrometheus(t *testing.T) {
	queries := dashboardQueries(t, dashboards...) // a malformed dashboard fails before anything starts
	d := startMonitored(t)
	prom := startPrometheus(t, d.admin)
	started := time.Now()

	// Every process is scraped before the traffic starts.
	awaitQuery(t, prom, fmt.Sprintf(`count(up{job="piazza"} == 1) == %d`, len(d.procs)), "every piazza process to be up in Prometheus")

	suffix := uniqueSuffix()
	ann := signup(t, d.gw1, "ann_"+suffix)
	ben := signup(t, d.gw1, "ben_"+suffix)
	expect(t, "ann follows ben", d.gw1.do(http.MethodPost, "/v1/users/"+ben.User.Username+"/follow", ann.AccessToken, nil), http.StatusNoContent, "")

	// A live delivery over the double hop, then a replay on the other gateway.
	s := d.gw2.openStream(ann.AccessToken, "")
	waitPresence(t, d.gw1, ben.AccessToken, ann.User.Username, true)
	post := createPost(t, d.gw1, ben.AccessToken, "hello, metrics")
	s.notification("the post over the double hop", deliveryTimeout)
	s.close()
	replay := d.gw1.openStream(ann.AccessToken, "0")
	replay.notification("the replayed post", deliveryTimeout)
	replay.close()

	// A not-found (HTTP 404, gRPC NotFound) and a dead letter: the error panels have data.
	expect(t, "a post that does not exist", d.gw1.do(http.MethodGet, "/v1/posts/"+uuid.NewString(), ann.AccessToken, nil), http.StatusNotFound, "not_found")
	if err := os.WriteFile(d.failpoint, []byte("armed"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, "ann likes the post", d.gw1.do(http.MethodPost, "/v1/posts/"+post+"/like", ann.AccessToken, nil), http.StatusNoContent, "")
	awaitQuery(t, prom, `sum(deadletter_depth{job="piazza"}) > 0`, "the failed like to reach the dead-letter archive")

	// The variables first: $service takes every value its query finds (as "All" would).
	services := map[string]bool{}
	for _, v := range queries.variables {
		if v.name != "service" {
			continue
		}
		for _, s := range prom.query(t, v.expr) {
			if val := s.Metric[v.label]; val != "" {
				services[val] = true
			}
		}
	}
	if len(services) == 0 {
		t.Fatal("the $service variable's query finds no service")
	}
	names := slices.Sorted(maps.Keys(services))
	vars := map[string]string{
		"service":         "(" + strings.Join(names, "|") + ")",
		"instance":        ".+",
		"__rate_interval": promRateInterval,
		"__interval":      "15s",
		"__range":         promRateInterval,
	}

	// Counters touched late need a scrape or two: poll until every query finds series.
	var empty []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		empty = empty[:0]
		for _, v := range queries.variables {
			if len(prom.query(t, replaceVariables(v.expr, vars))) == 0 {
				empty = append(empty, fmt.Sprintf("%s: variable %s: %s", v.dashboard, v.name, v.expr))
			}
		}
		for _, q := range queries.targets {
			if len(prom.query(t, replaceVariables(q.expr, vars))) == 0 {
				empty = append(empty, fmt.Sprintf("%s: panel %q: %s", q.dashboard, q.panel, q.expr))
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // the scrape interval
	}
	if len(empty) > 0 {
		t.Errorf("%d of %d dashboard queries return no series:\n%s", len(empty), len(queries.targets)+len(queries.variables), strings.Join(empty, "\n"))
	}

	// Exemplars: each latency query marked for them finds some with a trace id to link.
	withExemplars := 0
	for _, q := range queries.targets {
		if !q.exemplar {
			continue
		}
		withExemplars++
		if !prom.hasTraceExemplar(t, replaceVariables(q.expr, vars), started.Add(-time.Minute), time.Now()) {
			t.Errorf("%s: panel %q: no exemplar with a trace_id for %s", q.dashboard, q.panel, q.expr)
		}
	}
	t.Logf("%d panel queries and %d variable queries evaluated for services %s; %d checked for exemplars",
		len(queries.targets), len(queries.variables), vars["service"], withExemplars)
}

// monitored is the distributed deployment with the admin addresses of its processes, by
// service, for the scrape configuration.
type monitored struct {
	deployment
	admin map[string][]string // service (user, gateway...) → admin addresses
}

// startMonitored starts the distributed deployment of the other end-to-end tests and collects
// its processes' admin addresses by service.
func startMonitored(t *testing.T) monitored {
	t.Helper()
	d := monitored{deployment: startDistributed(t, "--signup-limit-per-address=100/1m:100"), admin: map[string][]string{}}
	for name, p := range d.procs { // user-service, …, gateway-1, gateway-2
		service := strings.TrimSuffix(name, "-service")
		if strings.HasPrefix(name, "gateway-") {
			service = "gateway"
		}
		d.admin[service] = append(d.admin[service], p.AdminAddr)
	}
	return d
}

// prometheus is a private Prometheus server started by scripts/infra/prometheus.sh.
type prometheus struct {
	base string // http://host:port
}

// startPrometheus runs scripts/infra/prometheus.sh (which installs the Debian package when it
// is missing) with the repository's scrape configuration pointed at the given admin addresses,
// waits until it is ready, and stops it by its pid when the test ends.
func startPrometheus(t *testing.T, targets map[string][]string) prometheus {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"--dir", t.TempDir(), "--listen", addr, "--interval", "1s"}
	for service, addrs := range targets {
		args = append(args, "--target", service+"="+strings.Join(addrs, ","))
	}
	out := &syncBuffer{}
	cmd := exec.Command("../scripts/infra/prometheus.sh", args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		// The script execs Prometheus: its pid is Prometheus's.
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("prometheus still running 20s after SIGTERM\n%s", tail(out.String(), 20))
		}
	})

	p := prometheus{base: "http://" + addr}
	// The first run installs the package: a generous deadline.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("prometheus.sh exited: %v\n%s", err, out)
		default:
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 5 minutes\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// series is one element of an instant query's result.
type series struct {
	Metric map[string]string `json:"metric"`
}

// query evaluates expr now through the HTTP API and returns the resulting series; an invalid
// expression fails the test.
func (p prometheus) query(t *testing.T, expr string) []series {
	t.Helper()
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	if data.ResultType != "vector" && data.ResultType != "matrix" {
		return []series{{}} // a scalar or string is a value
	}
	var result []series
	if err := json.Unmarshal(data.Result, &result); err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return result
}

// hasTraceExemplar reports whether the series behind expr carry an exemplar with a trace_id
// between from and to.
func (p prometheus) hasTraceExemplar(t *testing.T, expr string, from, to time.Time) bool {
	t.Helper()
	var data []struct {
		Exemplars []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	p.get(t, "/api/v1/query_exemplars", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(from.Unix(), 10)},
		"end":   {strconv.FormatInt(to.Unix()+1, 10)},
	}, &data)
	for _, s := range data {
		for _, e := range s.Exemplars {
			if e.Labels["trace_id"] != "" {
				return true
			}
		}
	}
	return false
}

func (p prometheus) get(t *testing.T, path string, params url.Values, data any) {
	t.Helper()
	resp, err := http.PostForm(p.base+path, params)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s %v: status %d, %s", path, params, resp.StatusCode, body)
	}
	if r.Status != "success" {
		t.Fatalf("%s %s: %s", path, params.Get("query"), r.Error)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("%s: %v: %s", path, err, r.Data)
	}
}

// awaitQuery polls expr until it returns a series.
func awaitQuery(t *testing.T, p prometheus, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for len(p.query(t, expr)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s (%s)", what, expr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// panelQuery is one PromQL target of a dashboard panel.
type panelQuery struct {
	dashboard, panel, expr string
	exemplar               bool
}

// variableQuery is a Prometheus template variable: label_values(expr, label).
type variableQuery struct {
	dashboard, name, expr, label string
}

type dashboardSet struct {
	targets   []panelQuery
	variables []variableQuery
}

// grafanaPanel is what the test reads of a panel; rows nest panels.
type grafanaPanel struct {
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource *grafanaSource `json:"datasource"`
	Targets    []struct {
		Datasource *grafanaSource `json:"datasource"`
		Expr       string         `json:"expr"`
		Exemplar   bool           `json:"exemplar"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardQueries reads every Prometheus query of the dashboards: panel targets and template
// variables. A target without a datasource, or with one that the provisioned datasources do
// not define, fails the test.
func dashboardQueries(t *testing.T, paths ...string) dashboardSet {
	t.Helper()
	provisioned, err := os.ReadFile(datasourcesFile)
	if err != nil {
		t.Fatal(err)
	}
	// Each datasource is provisioned with a fixed uid; the dashboards refer to it.
	known := func(ds *grafanaSource) bool {
		return regexp.MustCompile(`(?m)^\s*uid:\s*` + regexp.QuoteMeta(ds.UID) + `\s*$`).Match(provisioned)
	}
	var set dashboardSet
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []grafanaPanel `json:"panels"`
			Templating struct {
				List []struct {
					Name       string          `json:"name"`
					Type       string          `json:"type"`
					Datasource *grafanaSource  `json:"datasource"`
					Query      json.RawMessage `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		var walk func(ps []grafanaPanel)
		walk = func(ps []grafanaPanel) {
			for _, p := range ps {
				walk(p.Panels)
				for _, tg := range p.Targets {
					ds := tg.Datasource
					if ds == nil {
						ds = p.Datasource
					}
					switch {
					case ds == nil:
						t.Errorf("%s: panel %q: a target without a datasource", name, p.Title)
					case !known(ds):
						t.Errorf("%s: panel %q: datasource uid %q is not provisioned in %s", name, p.Title, ds.UID, datasourcesFile)
					case ds.Type == "prometheus":
						if strings.TrimSpace(tg.Expr) == "" {
							t.Errorf("%s: panel %q: an empty PromQL target", name, p.Title)
							continue
						}
						set.targets = append(set.targets, panelQuery{dashboard: name, panel: p.Title, expr: tg.Expr, exemplar: tg.Exemplar})
					}
				}
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" || v.Datasource == nil || v.Datasource.Type != "prometheus" {
				continue
			}
			q, err := variableExpr(v.Query)
			if err != nil {
				t.Fatalf("%s: variable %s: %v", name, v.Name, err)
			}
			m := labelValues.FindStringSubmatch(q)
			if m == nil {
				t.Fatalf("%s: variable %s: %q is not label_values(<expr>, <label>)", name, v.Name, q)
			}
			set.variables = append(set.variables, variableQuery{dashboard: name, name: v.Name, expr: m[1], label: m[2]})
		}
	}
	if len(set.targets) == 0 {
		t.Fatal("no PromQL found in the dashboards")
	}
	return set
}

// variableExpr returns a variable's query, stored either as a string or as {"query": ...}.
func variableExpr(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.Query == "" {
		return "", errors.New("no query")
	}
	return o.Query, nil
}

var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// replaceVariables substitutes Grafana's variable syntaxes ($name, ${name}, ${name:format},
// [[name]]) with vars; an unknown variable stays, and Prometheus rejects the expression.
func replaceVariables(expr string, vars map[string]string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}
