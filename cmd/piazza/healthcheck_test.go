package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// adminStub serves /readyz and /healthz with the given statuses and records what was asked.
func adminStub(t *testing.T, ready, live int) (addr string, asked func() []string) {
	t.Helper()
	var (
		mu    sync.Mutex
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(ready)
			if ready != http.StatusOK {
				_, _ = w.Write([]byte(`{"status":"unavailable","checks":{"kafka":"dial tcp: connection refused"}}`))
			}
		case "/healthz":
			w.WriteHeader(live)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
}

func healthcheck(env map[string]string, args ...string) (stdout string, err error) {
	var out, errOut bytes.Buffer
	err = runHealthcheck(context.Background(), args, &out, &errOut, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	return out.String(), err
}

func TestHealthcheckPassesOnlyWhenTheProcessIsReady(t *testing.T) {
	readyAddr, asked := adminStub(t, http.StatusOK, http.StatusOK)
	if _, err := healthcheck(nil, "--admin-addr", readyAddr); err != nil {
		t.Fatalf("ready process reported unhealthy: %v", err)
	}
	if got := asked(); !slices.Equal(got, []string{"/readyz"}) {
		t.Fatalf("asked %v, want [/readyz]", got)
	}

	notReady, _ := adminStub(t, http.StatusServiceUnavailable, http.StatusOK)
	_, err := healthcheck(nil, "--admin-addr", notReady)
	if err == nil {
		t.Fatal("a process answering 503 was reported healthy")
	}
	// The operator reading `docker inspect` sees which dependency failed, on one line.
	if msg := err.Error(); !strings.Contains(msg, "503") || !strings.Contains(msg, "kafka") || strings.Contains(msg, "\n") {
		t.Fatalf("error %q should be one line naming the status and the failing check", msg)
	}
}

func TestHealthcheckLiveProbeAsksHealthz(t *testing.T) {
	addr, asked := adminStub(t, http.StatusServiceUnavailable, http.StatusOK)
	if _, err := healthcheck(nil, "--admin-addr", addr, "--probe", "live"); err != nil {
		t.Fatalf("live process (not ready) failed the liveness probe: %v", err)
	}
	if got := asked(); !slices.Equal(got, []string{"/healthz"}) {
		t.Fatalf("asked %v, want [/healthz]", got)
	}
}

func TestHealthcheckFindsTheProcessThroughItsWildcardAdminAddress(t *testing.T) {
	addr, asked := adminStub(t, http.StatusOK, http.StatusOK)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// What a container sets so that Prometheus can scrape it: the process listens on every
	// interface, the check must dial loopback.
	if _, err := healthcheck(map[string]string{"PIAZZA_ADMIN_ADDR": "0.0.0.0:" + port}); err != nil {
		t.Fatalf("healthcheck with PIAZZA_ADMIN_ADDR=0.0.0.0:%s: %v", port, err)
	}
	if got := asked(); !slices.Equal(got, []string{"/readyz"}) {
		t.Fatalf("asked %v, want [/readyz]", got)
	}
}

func TestHealthcheckFailsWhenNothingListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = healthcheck(nil, "--admin-addr", addr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err = %v, want a failure naming %s", err, addr)
	}
}

func TestHealthcheckRejectsMistakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown probe", nil, []string{"--probe", "deep"}, "--probe"},
		{"no port", map[string]string{"PIAZZA_ADMIN_ADDR": "localhost"}, nil, "PIAZZA_ADMIN_ADDR"},
		{"random port", nil, []string{"--admin-addr", "127.0.0.1:0"}, "no fixed port"},
		{"stray argument", nil, []string{"now"}, "unexpected argument"},
		{"zero timeout", nil, []string{"--timeout", "0s"}, "--timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := healthcheck(tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLocalAddrDialsLoopbackForWildcardHosts(t *testing.T) {
	for listen, want := range map[string]string{
		"0.0.0.0:9090":   "127.0.0.1:9090",
		":9090":          "127.0.0.1:9090",
		"[::]:9090":      "[::1]:9090",
		"10.1.2.3:9090":  "10.1.2.3:9090",
		"127.0.0.1:9191": "127.0.0.1:9191",
	} {
		got, err := localAddr(listen)
		if err != nil || got != want {
			t.Errorf("localAddr(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
}
