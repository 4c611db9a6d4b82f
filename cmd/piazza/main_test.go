package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the piazza binary once per test run: these tests prove what an operator
// sees (exit codes, signals, one-line errors), which only the real process shows.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "piazza")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var (
	addrMu    sync.Mutex
	addrsUsed = map[string]bool{}
)

// freeAddr returns a loopback address nobody listens on right now and that no earlier call
// returned (the kernel may hand a just-closed port out again).
func freeAddr(t *testing.T) string {
	t.Helper()
	addrMu.Lock()
	defer addrMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !addrsUsed[addr] {
			addrsUsed[addr] = true
			return addr
		}
	}
}

// cleanEnv keeps PIAZZA_* settings of the surrounding shell from leaking into the process.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIAZZA_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestDevBecomesReadyAndStopsCleanlyOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	admin, public := freeAddr(t), freeAddr(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--http-addr", public, "--admin-addr", admin)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready %v after start", time.Since(start).Round(time.Millisecond))
	if resp, err := http.Get("http://" + admin + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	resp, err := http.Get("http://" + public + "/v1/openapi.json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("public API: %v %v", resp, err)
	}
	resp.Body.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, &stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after SIGTERM")
	}
	if !strings.Contains(stdout.String(), `"msg":"stopped"`) {
		t.Errorf("no clean-stop log line:\n%s", &stdout)
	}
	scanner := bufio.NewScanner(&stdout)
	for scanner.Scan() {
		if line := scanner.Bytes(); len(line) > 0 && line[0] != '{' {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func TestBadConfigurationFailsFastWithOneLineNamingTheSetting(t *testing.T) {
	bin := buildBinary(t)
	// A port nobody listens on: connection refused at once.
	deadKafka := freeAddr(t)
	cases := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"unknown log level", []string{"dev"}, []string{"PIAZZA_LOG_LEVEL=verbose"}, []string{"PIAZZA_LOG_LEVEL", "--log-level", "verbose"}},
		{"unknown log level flag", []string{"dev", "--log-level=loud"}, nil, []string{"log-level", "loud"}},
		{"unreachable kafka", []string{"serve", "--services=user", "--admin-addr", freeAddr(t), "--grpc-addr", freeAddr(t), "--user-database-url", "postgres://nobody@" + freeAddr(t) + "/none", "--jwt-keys-dir", t.TempDir()}, []string{"PIAZZA_KAFKA_BROKERS=" + deadKafka}, []string{"PIAZZA_KAFKA_BROKERS", "--kafka-brokers", deadKafka}},
		{"missing kafka", []string{"serve", "--services=gateway"}, nil, []string{"PIAZZA_KAFKA_BROKERS", "required"}},
		{"unknown service", []string{"serve", "--services=gateway,teleport", "--kafka-brokers=" + deadKafka}, nil, []string{"PIAZZA_SERVICES", "teleport"}},
		{"gateway without redis", []string{"serve", "--services=gateway", "--kafka-brokers=" + deadKafka, "--user-service-addr", freeAddr(t)}, nil, []string{"PIAZZA_REDIS_ADDR", "required"}},
		{"user without database", []string{"serve", "--services=user", "--kafka-brokers=" + deadKafka, "--jwt-keys-dir", t.TempDir()}, nil, []string{"PIAZZA_USER_DATABASE_URL", "required"}},
		{"bad trusted proxy", []string{"dev", "--trusted-proxies=10.0.0.0/8,banana"}, nil, []string{"PIAZZA_TRUSTED_PROXIES", "banana"}},
		{"unknown command", []string{"launch"}, nil, []string{"unknown command", "launch"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = cleanEnv(tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("want exit code 1, got %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
			}
			t.Logf("failed after %v", time.Since(start).Round(time.Millisecond))
			// The last stderr line is the error; usage text may precede it for a bad command.
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "piazza: ") {
				t.Fatalf("last stderr line %q is not the one-line error\nstderr:\n%s", last, &stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error line %q does not mention %q", last, w)
				}
			}
			if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "panic") {
				t.Errorf("stack trace in output:\n%s", &stderr)
			}
		})
	}
}

func TestVersionPrintsOneLine(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &out, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("want one line, got %q", out.String())
	}
}
