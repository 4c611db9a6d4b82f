//go:build integration

package e2e

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/cassandra/cassandratest"
	"github.com/piazza-social/piazza/platform/infratest"
)

// waitReadyz polls a process's /readyz until its body contains want, and returns the status.
func waitReadyz(t *testing.T, admin, want string) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never mentioned %q; last: %d %s", want, resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A distributed service never migrates on its own: until the migration job has run it stays
// alive but not ready, saying which version it needs; then it becomes ready by itself. Asked to
// stop while waiting, it exits cleanly.
func TestDistributedServicesWaitForTheirSchemaJob(t *testing.T) {
	kafka := strings.Join(infratest.KafkaBrokers(t), ",")
	keys := t.TempDir()
	if _, err := auth.GenerateKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	userDB := infratest.NewPostgresDatabase(t)
	cassHosts, keyspace := cassandratest.NewKeyspace(t)
	cass := []string{"--cassandra-hosts", strings.Join(cassHosts, ","), "--cassandra-keyspace", keyspace}

	run := func(name string, args ...string) (*exec.Cmd, string, chan error) {
		admin := freeAddr(t)
		cmd := exec.Command(binary(t), append([]string{"serve", "--grpc-addr", freeAddr(t), "--admin-addr", admin,
			"--kafka-brokers", kafka, "--bus-namespace", "e2e" + uniqueSuffix() + "."}, args...)...)
		cmd.Env = cleanEnv()
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, tail(out.String(), 40))
			}
		})
		return cmd, admin, done
	}

	user, userAdmin, userDone := run("user-service", "--services=user", "--user-database-url", userDB, "--jwt-keys-dir", keys)
	if status := waitReadyz(t, userAdmin, "piazza migrate postgres"); status != http.StatusServiceUnavailable {
		t.Fatalf("user-service before the job: /readyz %d, want 503", status)
	}
	_, msgAdmin, _ := run("messaging-service", append([]string{"--services=messaging"}, cass...)...)
	if status := waitReadyz(t, msgAdmin, "piazza migrate cassandra"); status != http.StatusServiceUnavailable {
		t.Fatalf("messaging-service before the job: /readyz %d, want 503", status)
	}
	if resp, err := http.Get("http://" + userAdmin + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while waiting: %v %v", resp, err)
	}

	// The jobs run; both services become ready without a restart.
	migrate(t, "postgres", "--user-database-url", userDB)
	migrate(t, append([]string{"cassandra"}, cass...)...)
	if status := waitReadyz(t, userAdmin, `"status":"ok"`); status != http.StatusOK {
		t.Fatalf("user-service after the job: /readyz %d", status)
	}
	if status := waitReadyz(t, msgAdmin, `"status":"ok"`); status != http.StatusOK {
		t.Fatalf("messaging-service after the job: /readyz %d", status)
	}
	_ = user.Process.Signal(syscall.SIGTERM)
	if err := <-userDone; err != nil {
		t.Fatalf("user-service after SIGTERM: %v", err)
	}

	// Asked to stop while still waiting for its schema, a service exits 0.
	waiting, waitingAdmin, waitingDone := run("post-service", "--services=post", "--post-database-url", infratest.NewPostgresDatabase(t),
		"--user-service-addr", freeAddr(t))
	waitReadyz(t, waitingAdmin, "piazza migrate postgres")
	_ = waiting.Process.Signal(syscall.SIGTERM)
	if err := <-waitingDone; err != nil {
		t.Fatalf("post-service stopped while waiting: %v", err)
	}
}
