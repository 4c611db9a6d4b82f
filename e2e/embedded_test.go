package e2e

import (
	"net/http"
	"path/filepath"
	"testing"
)

// fastHashing keeps argon2id cheap in tests; production parameters are the defaults.
var fastHashing = []string{"--argon2-memory-kib=64", "--argon2-iterations=1"}

func startEmbedded(t *testing.T, dataDir, httpAddr string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"dev", "--data-dir", dataDir, "--http-addr", httpAddr}, fastHashing...)
	return start(t, "piazza dev", nil, append(args, extra...)...)
}

func TestEmbeddedIdentityLifecycle(t *testing.T) {
	addr := freeAddr(t)
	startEmbedded(t, t.TempDir(), addr)
	c := newClient(t, addr)
	identityScenario(t, c, c, "emb")
}

func TestEmbeddedKeepsAccountsAndSessionsAcrossRestarts(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	p := startEmbedded(t, dir, addr)
	c := newClient(t, addr)
	a := signup(t, c, "carol_restart")
	p.stop(t)

	startEmbedded(t, dir, addr)
	// The signing key, the account and the session all survived: the old access token still
	// verifies and the refresh token still rotates.
	expect(t, "old access token after restart", c.do(http.MethodGet, "/v1/me", a.AccessToken, nil), http.StatusOK, "")
	expect(t, "refresh after restart", c.do(http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": a.RefreshToken}), http.StatusOK, "")
	r := c.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": "carol_restart", "password": "correct horse battery carol_restart"})
	expect(t, "login after restart", r, http.StatusOK, "")
}

func TestEmbeddedLoginBurstEndsIn429(t *testing.T) {
	addr := freeAddr(t)
	startEmbedded(t, t.TempDir(), addr)
	c := newClient(t, addr)
	signup(t, c, "dave_burst")
	var last response
	for i := range 20 {
		last = c.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": "dave_burst", "password": "not the password"})
		if last.Status == http.StatusTooManyRequests {
			if last.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			if code := last.Code(t); code != "rate_limited" {
				t.Fatalf("code %q", code)
			}
			t.Logf("limited after %d attempts", i)
			return
		}
		if last.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d\n%s", i, last.Status, last.Body)
		}
	}
	t.Fatalf("20 wrong passwords in a row were never limited; last status %d", last.Status)
}

func TestEmbeddedRealtimeDeliveryReplayAndDeadLetters(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	fault := filepath.Join(t.TempDir(), "fail-likes")
	startEmbedded(t, dir, addr, "--event-max-attempts=3", "--failpoint=post.liked@"+fault)
	c := newClient(t, addr)
	realtimeScenario(t, realtime{
		gw1: c, gw2: c, failpoint: fault,
		dlq: func(args ...string) string { return runDLQ(t, nil, append(args, "--data-dir", dir)...) },
	}, "emb")
}

func TestEmbeddedDirectMessages(t *testing.T) {
	addr := freeAddr(t)
	startEmbedded(t, t.TempDir(), addr)
	c := newClient(t, addr)
	messagingScenario(t, c, c, "emb")
}
