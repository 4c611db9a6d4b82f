// Package target is the system under test of the load tool: the embedded default, which it
// builds and starts itself as a `piazza dev` process on a fresh data directory, or a running
// deployment named by its URLs. It also reads the figures a scenario reports about the server
// side — resident memory, Go heap, open file descriptors, goroutines — from the process's
// admin /metrics or, for any process on this machine, from /proc.
package target

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Deployment is what a scenario drives. Gateways are listed in the same order in every slice.
type Deployment struct {
	// Mode is "embedded" (started by the tool), "distributed" or "external".
	Mode string `json:"mode"`
	// APIURLs are the gateways' public base URLs (http://host:port).
	APIURLs []string `json:"api_urls"`
	// AdminURLs are the gateways' admin base URLs; "" where unknown (no server figures).
	AdminURLs []string `json:"admin_urls,omitempty"`
	// PIDs are the gateways' process ids on this machine; 0 where unknown.
	PIDs []int `json:"pids,omitempty"`
	// Args is the command line of a process the tool started.
	Args []string `json:"args,omitempty"`
}

// AdminURL returns the admin URL of gateway i, or "".
func (d Deployment) AdminURL(i int) string {
	if i < len(d.AdminURLs) {
		return d.AdminURLs[i]
	}
	return ""
}

// PID returns the process id of gateway i, or 0.
func (d Deployment) PID(i int) int {
	if i < len(d.PIDs) {
		return d.PIDs[i]
	}
	return 0
}

// Build compiles ./cmd/piazza of the module at moduleDir into out, with extra go build flags
// (e.g. -race).
func Build(ctx context.Context, moduleDir, out string, flags ...string) error {
	args := append([]string{"build", "-trimpath", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/piazza")...)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/piazza: %v\n%s", err, b)
	}
	return nil
}

// EmbeddedConfig is how to start the embedded default.
type EmbeddedConfig struct {
	// Binary is the piazza executable; required.
	Binary string
	// Dir holds the data directory and the process's log; required (the caller removes it).
	Dir string
	// Pprof serves /debug/pprof on the admin address.
	Pprof bool
	// ExtraArgs are appended to the command line (later flags win).
	ExtraArgs []string
	// StartTimeout bounds the wait for /readyz; default 60s.
	StartTimeout time.Duration
}

// BenchArgs are the settings the tool starts the embedded default with: cheap password
// hashing (sign-ups are set-up, not what is measured), rate limits out of the way of the
// thousands of sign-ups one client address makes, access tokens that outlive a long run, and
// logs at warn so that an access log line per request does not weigh on the figures.
var BenchArgs = []string{
	"--argon2-memory-kib=64", "--argon2-iterations=1",
	"--signup-limit-per-address=100000/1m:100000", "--signup-limit-per-account=100000/1m:100000",
	"--login-limit-per-address=100000/1m:100000", "--login-limit-per-account=100000/1m:100000",
	"--access-token-ttl=12h", "--refresh-token-ttl=24h",
	"--log-level=warn",
}

// Process is a `piazza dev` started by StartEmbedded.
type Process struct {
	APIURL, AdminURL string
	Args             []string
	cmd              *exec.Cmd
	logPath          string
	done             chan struct{}
	waitErr          error
	stopOnce         sync.Once
}

// StartEmbedded starts `piazza dev` on free loopback ports with its data under cfg.Dir and
// returns once its /readyz answers 200.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Process, error) {
	if cfg.Binary == "" || cfg.Dir == "" {
		return nil, errors.New("target: Binary and Dir are required")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"dev", "--data-dir=" + filepath.Join(cfg.Dir, "data"), "--http-addr=" + httpAddr, "--admin-addr=" + adminAddr}
	args = append(args, BenchArgs...)
	if cfg.Pprof {
		args = append(args, "--pprof")
	}
	args = append(args, cfg.ExtraArgs...)
	logPath := filepath.Join(cfg.Dir, "piazza.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("target: start %s: %w", cfg.Binary, err)
	}
	p := &Process{
		APIURL: "http://" + httpAddr, AdminURL: "http://" + adminAddr, Args: append([]string{"piazza"}, args...),
		cmd: cmd, logPath: logPath, done: make(chan struct{}),
	}
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()

	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("target: piazza exited during start-up: %v\n%s", p.waitErr, p.LogTail(20))
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("target: piazza not ready within %v\n%s", cfg.StartTimeout, p.LogTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Deployment describes the process as a one-gateway embedded deployment.
func (p *Process) Deployment() Deployment {
	return Deployment{Mode: "embedded", APIURLs: []string{p.APIURL}, AdminURLs: []string{p.AdminURL}, PIDs: []int{p.PID()}, Args: p.Args}
}

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM, waits up to 30 s for the process to end (then kills it), and returns an
// error unless it exited cleanly.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	if p.waitErr != nil {
		return fmt.Errorf("target: piazza: %v\n%s", p.waitErr, p.LogTail(20))
	}
	return nil
}

// LogTail returns the last n lines of the process's output.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// cleanEnv keeps PIAZZA_* and OTEL_* settings of the surrounding shell away from the process:
// what is measured is the command line recorded in the results.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIAZZA_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// Stats are the server-side figures of one process at one moment; -1 where unknown.
type Stats struct {
	RSSBytes       int64 `json:"rss_bytes"`
	HeapInuseBytes int64 `json:"heap_inuse_bytes"`
	OpenFDs        int64 `json:"open_fds"`
	MaxFDs         int64 `json:"max_fds"`
	Goroutines     int64 `json:"goroutines"`
	// SSEConnections is the gateway's own count of open event streams.
	SSEConnections int64 `json:"sse_connections"`
	// SSEDeliveries is the gateway's count of live notifications written to streams so far.
	SSEDeliveries int64 `json:"sse_deliveries"`
}

// unknownStats has every figure unknown.
var unknownStats = Stats{-1, -1, -1, -1, -1, -1, -1}

// ReadStats reads the figures of one process: from its admin /metrics when adminURL is set,
// and resident memory and descriptors from /proc when pid is set and the metrics lack them.
// Figures neither source has stay -1.
func ReadStats(ctx context.Context, hc *http.Client, adminURL string, pid int) (Stats, error) {
	s := unknownStats
	var errMetrics error
	if adminURL != "" {
		m, err := scrape(ctx, hc, adminURL+"/metrics")
		if err == nil {
			pick := func(dst *int64, name string) {
				if v, ok := m[name]; ok {
					*dst = int64(v)
				}
			}
			pick(&s.RSSBytes, "process_resident_memory_bytes")
			pick(&s.HeapInuseBytes, "go_memstats_heap_inuse_bytes")
			pick(&s.OpenFDs, "process_open_fds")
			pick(&s.MaxFDs, "process_max_fds")
			pick(&s.Goroutines, "go_goroutines")
			pick(&s.SSEConnections, "gateway_sse_connections")
			pick(&s.SSEDeliveries, "gateway_sse_deliveries_total")
		}
		errMetrics = err
	}
	if pid > 0 {
		if s.RSSBytes < 0 {
			if v, err := procRSS(pid); err == nil {
				s.RSSBytes = v
			}
		}
		if s.OpenFDs < 0 {
			if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
				s.OpenFDs = int64(len(entries))
			}
		}
	}
	return s, errMetrics
}

// scrape reads a Prometheus text exposition and sums each metric's samples over its labels.
func scrape(ctx context.Context, hc *http.Client, u string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("target: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("target: scrape %s: status %d", u, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}

// procRSS reads VmRSS of a process.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("target: no VmRSS")
}

// Profile saves the admin's /debug/pprof/<kind> (with query, e.g. "seconds=10") to path.
func Profile(ctx context.Context, hc *http.Client, adminURL, kind, query, path string) error {
	u := adminURL + "/debug/pprof/" + kind
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("target: profile %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("target: profile %s: status %d (is --pprof on?)", kind, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
