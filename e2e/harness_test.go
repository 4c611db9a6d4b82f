// Package e2e holds the end-to-end tests: the real piazza binary started as processes, driven
// over its public HTTP API. The embedded default needs nothing else and runs in the unit tier;
// distributed mode runs against the real servers under the integration build tag.
package e2e

import (
	"bytes"
	"context"
	"fmt"
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

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the piazza binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "piazza-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "piazza")
		out, err := exec.Command("go", "build", "-race", "-tags", "failpoints", "-o", binPath, "../cmd/piazza").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var (
	addrMu    sync.Mutex
	addrsUsed = map[string]bool{}
)

// freeAddr returns a loopback address nobody listens on right now and that no earlier call of
// this test run returned (the kernel may hand a just-closed port out again).
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

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running piazza process.
type proc struct {
	name      string
	cmd       *exec.Cmd
	out       *syncBuffer
	AdminAddr string
	done      chan error
	killed    bool
}

// start runs `piazza args...` with an admin address of its own, waits until /readyz answers
// 200, and stops it with SIGTERM when the test ends, failing the test unless it exits 0.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, AdminAddr: freeAddr(t), done: make(chan error, 1)}
	args = append(args, "--admin-addr", p.AdminAddr)
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited during start-up: %v\n%s", name, err, p.out)
		default:
		}
		resp, err := http.Get("http://" + p.AdminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60s\n%s", name, p.out)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.killed || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s: exit after SIGTERM: %v\n%s", p.name, err, tail(p.out.String(), 40))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s: still running 30s after SIGTERM\n%s", p.name, tail(p.out.String(), 40))
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", p.name, tail(p.out.String(), 80))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanEnv keeps PIAZZA_* and OTEL_* settings of the surrounding shell out of the processes.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIAZZA_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// ctx returns a context bounded by the test's deadline, or a minute.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}
