package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/ratelimit"
	"github.com/piazza-social/piazza/services/gateway"
)

func loginAttempt(login, addr string) req {
	return req{method: "POST", path: "/v1/auth/login", remoteAddr: addr,
		body: `{"login":"` + login + `","password":"wrong guess number"}`}
}

// retryAfter returns the Retry-After of a 429 rate_limited problem.
func retryAfter(t *testing.T, w *httptest.ResponseRecorder) time.Duration {
	t.Helper()
	wantProblem(t, w, http.StatusTooManyRequests, errs.RateLimited)
	s, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || s < 1 {
		t.Fatalf("Retry-After %q: want a positive integer", w.Header().Get("Retry-After"))
	}
	return time.Duration(s) * time.Second
}

func TestABruteForceLoginBurstEndsIn429WithRetryAfter(t *testing.T) {
	h := newHarness(t)
	h.signup("victim")
	burst := gateway.DefaultRateLimits().LoginPerAddress.Burst

	var w *httptest.ResponseRecorder
	for i := range 50 {
		w = h.do(loginAttempt("victim", "203.0.113.9:4000"))
		if w.Code == http.StatusTooManyRequests {
			if i != burst {
				t.Errorf("limited after %d attempts, want %d", i, burst)
			}
			break
		}
		wantProblem(t, w, http.StatusUnauthorized, errs.Unauthenticated)
	}
	wait := retryAfter(t, w)
	if n := h.users.callCount("Login"); n != burst {
		t.Errorf("user-service saw %d attempts, want %d", n, burst)
	}

	// Retry-After is honest about the address's limit: once it has passed, the address may try
	// again (another account here: the victim's own limit, 5 a minute, is still exhausted).
	h.clock.Advance(wait - time.Second)
	retryAfter(t, h.do(loginAttempt("other", "203.0.113.9:4000")))
	h.clock.Advance(time.Second)
	wantProblem(t, h.do(loginAttempt("other", "203.0.113.9:4000")), http.StatusUnauthorized, errs.Unauthenticated)
}

func TestLoginAttemptsOnOneAccountAreLimitedAcrossAddresses(t *testing.T) {
	h := newHarness(t)
	h.signup("target")
	burst := gateway.DefaultRateLimits().LoginPerAccount.Burst
	for i := range burst {
		// Case variants of the login name count as one account.
		login := []string{"target", "TARGET", "Target"}[i%3]
		w := h.do(loginAttempt(login, fmt.Sprintf("192.0.2.%d:1234", i+1)))
		wantProblem(t, w, http.StatusUnauthorized, errs.Unauthenticated)
	}
	retryAfter(t, h.do(loginAttempt("target", "192.0.2.200:1234")))
	// Another account from a fresh address is unaffected.
	wantProblem(t, h.do(loginAttempt("someone_else", "192.0.2.201:1234")), http.StatusUnauthorized, errs.Unauthenticated)
}

func TestSignupIsLimitedPerAddressAndPerUsername(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) {
		c.RateLimits.SignupPerAddress = ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
	})
	signupFrom := func(name, addr string) *httptest.ResponseRecorder {
		return h.do(req{method: "POST", path: "/v1/auth/signup", remoteAddr: addr,
			body: `{"username":"` + name + `","email":"` + name + `@example.com","password":"correct horse battery"}`})
	}
	for _, name := range []string{"one", "two"} {
		if w := signupFrom(name, "198.51.100.7:1"); w.Code != http.StatusCreated {
			t.Fatalf("signup %s: %d %s", name, w.Code, w.Body)
		}
	}
	retryAfter(t, signupFrom("three", "198.51.100.7:1"))

	// Probing one taken username from many addresses is limited per username.
	burst := gateway.DefaultRateLimits().SignupPerAccount.Burst
	for i := 1; i < burst; i++ { // "one" was tried once already
		wantProblem(t, signupFrom("one", fmt.Sprintf("198.51.100.%d:1", 10+i)), http.StatusConflict, errs.Conflict)
	}
	retryAfter(t, signupFrom("one", "198.51.100.99:1"))
}

func TestForwardedForIsBelievedOnlyFromTrustedProxies(t *testing.T) {
	spoofed := func(h *harness, i int) *httptest.ResponseRecorder {
		r := loginAttempt(fmt.Sprintf("user%d", i), "10.0.0.5:5555")
		r.header = http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i)}}
		return h.do(r)
	}
	burst := gateway.DefaultRateLimits().LoginPerAddress.Burst

	t.Run("untrusted peer: the header is ignored", func(t *testing.T) {
		h := newHarness(t)
		for i := range burst {
			wantProblem(t, spoofed(h, i), http.StatusUnauthorized, errs.Unauthenticated)
		}
		retryAfter(t, spoofed(h, burst))
	})
	t.Run("trusted proxy: each forwarded client has its own limit", func(t *testing.T) {
		h := newHarness(t, func(c *gateway.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		for i := range 2 * burst {
			wantProblem(t, spoofed(h, i), http.StatusUnauthorized, errs.Unauthenticated)
		}
	})
	t.Run("trusted proxy: entries left of the first untrusted one are the client's own", func(t *testing.T) {
		h := newHarness(t, func(c *gateway.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		for i := range burst + 1 {
			r := loginAttempt(fmt.Sprintf("user%d", i), "10.0.0.5:5555")
			// The client forges a fresh address each time; the proxy appends the real one.
			r.header = http.Header{"X-Forwarded-For": {fmt.Sprintf("198.18.0.%d, 203.0.113.50", i)}}
			w := h.do(r)
			if i < burst {
				wantProblem(t, w, http.StatusUnauthorized, errs.Unauthenticated)
			} else {
				retryAfter(t, w)
			}
		}
		for _, k := range h.limiter.keys() {
			if strings.Contains(k, "addr:") && !strings.HasSuffix(k, "addr:203.0.113.50") {
				t.Errorf("limited key %q, want the address the proxy saw", k)
			}
		}
	})
}

func TestIPv6ClientsAreCountedPerSlash64(t *testing.T) {
	h := newHarness(t)
	burst := gateway.DefaultRateLimits().LoginPerAddress.Burst
	for i := range burst {
		wantProblem(t, h.do(loginAttempt(fmt.Sprintf("user%d", i), fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1))), http.StatusUnauthorized, errs.Unauthenticated)
	}
	retryAfter(t, h.do(loginAttempt("another", "[2001:db8:1:2:ffff::1]:443")))
	wantProblem(t, h.do(loginAttempt("another", "[2001:db8:1:3::1]:443")), http.StatusUnauthorized, errs.Unauthenticated)
}

func TestAFailingLimiterLetsLoginsThroughAndWarns(t *testing.T) {
	h := newHarness(t)
	h.signup("quinn")
	h.limiter.setErr(errors.New("redis: connection refused"))
	w := h.do(req{method: "POST", path: "/v1/auth/login", body: `{"login":"quinn","password":"correct horse battery"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "rate limiter failed") || !strings.Contains(logs, "connection refused") {
		t.Errorf("no warning logged: %s", logs)
	}
}

func TestRetryAfterIsRoundedUpToWholeSeconds(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) {
		c.Limiter = limiterFunc(func(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
			return ratelimit.Result{RetryAfter: 1200 * time.Millisecond}, nil
		})
	})
	w := h.do(loginAttempt("rita", "192.0.2.1:1"))
	if got := retryAfter(t, w); got != 2*time.Second {
		t.Errorf("Retry-After %s, want 2s", got)
	}
}

func TestRateLimitsValidateNamesTheBadLimit(t *testing.T) {
	if err := (gateway.RateLimits{}).Validate(); err != nil {
		t.Errorf("zero limits (the defaults): %v", err)
	}
	if err := gateway.DefaultRateLimits().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := gateway.RateLimits{LoginPerAccount: ratelimit.Limit{Rate: 5, Period: time.Minute}}.Validate()
	if !errors.Is(err, ratelimit.ErrInvalidLimit) || !strings.Contains(err.Error(), "LoginPerAccount") {
		t.Errorf("burst 0: %v", err)
	}
}

func TestAnInvalidConfiguredLimitIsReplacedByItsDefaultNotFailedOpen(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) {
		c.RateLimits.LoginPerAddress = ratelimit.Limit{Rate: 1, Period: time.Minute} // burst 0
	})
	burst := gateway.DefaultRateLimits().LoginPerAddress.Burst
	for i := range burst {
		wantProblem(t, h.do(loginAttempt(fmt.Sprintf("user%d", i), "192.0.2.1:1")), http.StatusUnauthorized, errs.Unauthenticated)
	}
	retryAfter(t, h.do(loginAttempt("more", "192.0.2.1:1")))
	if !strings.Contains(h.logs.String(), "invalid rate limit replaced by its default") {
		t.Errorf("not logged: %s", h.logs)
	}
}
