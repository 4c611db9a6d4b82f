package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/admin"
)

// running is an admin server started by start.
type running struct {
	srv    *admin.Server
	base   string
	cancel context.CancelFunc
	done   chan error
}

// start runs an admin server on a free loopback port and stops it at the
// end of the test.
func start(t *testing.T, cfg admin.Config, metrics http.Handler) *running {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv := admin.New(cfg, metrics, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("server did not start listening within 5s")
	}
	r := &running{srv: srv, base: "http://" + srv.Addr(), cancel: cancel, done: done}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

// stop cancels Run and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // let the cleanup's receive complete
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
		return nil
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func getReadyz(t *testing.T, r *running) (int, admin.ReadyzResponse) {
	t.Helper()
	code, body := get(t, r.base+"/readyz")
	var resp admin.ReadyzResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("decode /readyz body %q: %v", body, err)
	}
	return code, resp
}

func checkByName(resp admin.ReadyzResponse, name string) (admin.CheckResult, bool) {
	for _, c := range resp.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return admin.CheckResult{}, false
}

func ok(context.Context) error { return nil }

func TestHealthzReportsOK(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	// A failing readiness check must not affect liveness.
	r.srv.AddCheck("db", func(context.Context) error { return errors.New("down") })

	code, body := get(t, r.base+"/healthz")
	if code != http.StatusOK {
		t.Errorf("status = %d, want 200", code)
	}
	if strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("body = %q, want {\"status\":\"ok\"}", body)
	}
}

func TestReadyzIsOKWhenAllChecksPass(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	r.srv.AddCheck("postgres", ok)
	r.srv.AddCheck("kafka", ok)

	code, resp := getReadyz(t, r)
	if code != http.StatusOK || resp.Status != "ok" {
		t.Fatalf("readyz = %d %q, want 200 ok", code, resp.Status)
	}
	var names []string
	for _, c := range resp.Checks {
		names = append(names, c.Name)
		if c.Status != "ok" || c.Error != "" {
			t.Errorf("check %s = %q %q, want ok", c.Name, c.Status, c.Error)
		}
	}
	if !slices.Equal(names, []string{"kafka", "postgres"}) {
		t.Errorf("checks = %v, want [kafka postgres] in name order", names)
	}
	if len(resp.Failing) != 0 {
		t.Errorf("failing = %v, want none", resp.Failing)
	}
}

func TestReadyzWithoutChecksIsOK(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	if code, resp := getReadyz(t, r); code != http.StatusOK || resp.Status != "ok" {
		t.Errorf("readyz = %d %q, want 200 ok", code, resp.Status)
	}
}

func TestReadyzNamesFailingCheck(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	r.srv.AddCheck("postgres", ok)
	r.srv.AddCheck("redis", func(context.Context) error { return errors.New("connection refused") })

	code, resp := getReadyz(t, r)
	if code != http.StatusServiceUnavailable || resp.Status != "unavailable" {
		t.Fatalf("readyz = %d %q, want 503 unavailable", code, resp.Status)
	}
	if !slices.Equal(resp.Failing, []string{"redis"}) {
		t.Errorf("failing = %v, want [redis]", resp.Failing)
	}
	c, found := checkByName(resp, "redis")
	if !found || c.Status != "fail" || c.Error != "connection refused" {
		t.Errorf("redis check = %+v, want fail with its error", c)
	}
	if c, _ := checkByName(resp, "postgres"); c.Status != "ok" {
		t.Errorf("postgres check = %+v, want ok", c)
	}
}

func TestReadyzReportsHangingChecksAsTimedOut(t *testing.T) {
	const timeout = 100 * time.Millisecond
	r := start(t, admin.Config{CheckTimeout: timeout}, nil)

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r.srv.AddCheck("ignores-ctx", func(context.Context) error { <-release; return nil })
	r.srv.AddCheck("honours-ctx", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	r.srv.AddCheck("fast", ok)

	began := time.Now()
	code, resp := getReadyz(t, r)
	elapsed := time.Since(began)

	if code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", code)
	}
	if !slices.Equal(resp.Failing, []string{"honours-ctx", "ignores-ctx"}) {
		t.Errorf("failing = %v, want [honours-ctx ignores-ctx]", resp.Failing)
	}
	for _, name := range []string{"honours-ctx", "ignores-ctx"} {
		if c, _ := checkByName(resp, name); !strings.Contains(c.Error, "timed out") {
			t.Errorf("%s error = %q, want it to mention the timeout", name, c.Error)
		}
	}
	// Checks run concurrently, so the probe takes about one timeout, not two.
	if elapsed > 10*timeout {
		t.Errorf("readyz took %v with a %v check timeout", elapsed, timeout)
	}
}

func TestReadyzRunsChecksConcurrently(t *testing.T) {
	r := start(t, admin.Config{CheckTimeout: 5 * time.Second}, nil)
	// Each check waits until both have started: run one after the other
	// they would both time out.
	var barrier sync.WaitGroup
	barrier.Add(2)
	both := func(ctx context.Context) error {
		barrier.Done()
		waited := make(chan struct{})
		go func() { barrier.Wait(); close(waited) }()
		select {
		case <-waited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.srv.AddCheck("a", both)
	r.srv.AddCheck("b", both)

	if code, resp := getReadyz(t, r); code != http.StatusOK {
		t.Errorf("readyz = %d %+v, want 200", code, resp)
	}
}

func TestReadyzReportsPanickingCheck(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	r.srv.AddCheck("buggy", func(context.Context) error { panic("boom") })

	code, resp := getReadyz(t, r)
	c, _ := checkByName(resp, "buggy")
	if code != http.StatusServiceUnavailable || !strings.Contains(c.Error, "boom") {
		t.Errorf("readyz = %d, buggy = %+v; want 503 with the panic value", code, c)
	}
	// The server survives.
	if code, _ := get(t, r.base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz after panic = %d, want 200", code)
	}
}

func TestReadyzTurnsUnavailableWhenDraining(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	r.srv.AddCheck("postgres", ok)
	if code, _ := getReadyz(t, r); code != http.StatusOK {
		t.Fatalf("readyz before draining = %d, want 200", code)
	}

	r.srv.SetDraining()

	code, resp := getReadyz(t, r)
	if code != http.StatusServiceUnavailable || resp.Status != "draining" {
		t.Errorf("readyz while draining = %d %q, want 503 draining", code, resp.Status)
	}
	if code, _ := get(t, r.base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz while draining = %d, want 200 (the process is still alive)", code)
	}
}

func TestMetricsServesGivenHandler(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "piazza_fake_metric 42")
	})
	r := start(t, admin.Config{}, metrics)

	code, body := get(t, r.base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "piazza_fake_metric 42") {
		t.Errorf("/metrics = %d %q, want 200 with the handler's output", code, body)
	}
}

func TestPprofIsServedOnlyWhenEnabled(t *testing.T) {
	tests := []struct {
		enabled bool
		want    int
	}{
		{enabled: true, want: http.StatusOK},
		{enabled: false, want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("enabled=%v", tt.enabled), func(t *testing.T) {
			r := start(t, admin.Config{EnablePprof: tt.enabled}, nil)
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				if code, _ := get(t, r.base+path); code != tt.want {
					t.Errorf("GET %s = %d, want %d", path, code, tt.want)
				}
			}
		})
	}
}

func TestRunReturnsNilAfterCancelAndClosesPort(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	addr := r.srv.Addr()
	if code, _ := get(t, r.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz = %d before stop", code)
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("port %s still accepts connections after Run returned", addr)
	}
}

func TestRunFailsWhenAddressIsTaken(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()

	srv := admin.New(admin.Config{Addr: lis.Addr().String()}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Run(ctx); err == nil {
		t.Error("Run on a taken address returned nil, want an error")
	}
}

func TestRunCannotBeCalledTwice(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	if err := r.srv.Run(context.Background()); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}

func TestAddCheckRejectsWiringBugs(t *testing.T) {
	tests := []struct {
		name string
		add  func(s *admin.Server)
	}{
		{"empty name", func(s *admin.Server) { s.AddCheck("", ok) }},
		{"nil function", func(s *admin.Server) { s.AddCheck("x", nil) }},
		{"duplicate name", func(s *admin.Server) { s.AddCheck("x", ok); s.AddCheck("x", ok) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := admin.New(admin.Config{}, nil, nil)
			defer func() {
				if recover() == nil {
					t.Error("AddCheck did not panic")
				}
			}()
			tt.add(s)
		})
	}
}

// TestAddCheckIsSafeDuringProbes is meaningful under -race.
func TestAddCheckIsSafeDuringProbes(t *testing.T) {
	r := start(t, admin.Config{}, nil)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { r.srv.AddCheck(fmt.Sprintf("check-%02d", i), ok) })
		wg.Go(func() {
			resp, err := http.Get(r.base + "/readyz")
			if err != nil {
				t.Errorf("GET /readyz: %v", err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	code, resp := getReadyz(t, r)
	if code != http.StatusOK || len(resp.Checks) != 20 {
		t.Errorf("readyz = %d with %d checks, want 200 with 20", code, len(resp.Checks))
	}
}
