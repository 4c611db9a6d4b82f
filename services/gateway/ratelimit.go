package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/ratelimit"
)

// RateLimits are the limits on sign-up and login attempts, counted per client address and per
// account. A zero Limit takes its default from [DefaultRateLimits].
type RateLimits struct {
	// LoginPerAddress bounds login attempts from one client address (an IPv6 client counts
	// per /64, the block a single subscriber usually holds).
	LoginPerAddress ratelimit.Limit
	// LoginPerAccount bounds login attempts naming one account (the login identifier,
	// lower-cased), from anywhere: it stops a distributed guess of one password.
	LoginPerAccount ratelimit.Limit
	// SignupPerAddress bounds sign-ups from one client address.
	SignupPerAddress ratelimit.Limit
	// SignupPerAccount bounds sign-up attempts naming one username and, separately, one email
	// address: it stops probing which names and addresses are taken.
	SignupPerAccount ratelimit.Limit
}

// DefaultRateLimits are the defaults: login 10 a minute per address in bursts of 5, and 5 a
// minute per account; sign-up 20 an hour per address in bursts of 10, and 5 a minute per
// username or email address.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		LoginPerAddress:  ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 5},
		LoginPerAccount:  ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 5},
		SignupPerAddress: ratelimit.Limit{Rate: 20, Period: time.Hour, Burst: 10},
		SignupPerAccount: ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 5},
	}
}

// Validate reports the first limit that is neither zero (the default) nor valid.
func (l RateLimits) Validate() error {
	for _, f := range l.fields() {
		if *f.limit != (ratelimit.Limit{}) {
			if err := f.limit.Validate(); err != nil {
				return fmt.Errorf("gateway: rate limit %s: %w", f.name, err)
			}
		}
	}
	return nil
}

// withDefaults fills the zero limits with the defaults. An invalid limit would make every
// Allow fail (and the gateway fail open): it is replaced by its default too, with an error
// logged, since New cannot refuse it. Callers validate their configuration with Validate.
func (l RateLimits) withDefaults(log *slog.Logger) RateLimits {
	d := DefaultRateLimits()
	def := d.fields()
	for i, f := range l.fields() {
		switch {
		case *f.limit == (ratelimit.Limit{}):
			*f.limit = *def[i].limit
		case f.limit.Validate() != nil:
			log.LogAttrs(context.Background(), slog.LevelError, "invalid rate limit replaced by its default",
				slog.String("limit", f.name), slog.String("error", f.limit.Validate().Error()),
				slog.String("default", def[i].limit.String()))
			*f.limit = *def[i].limit
		}
	}
	return l
}

type namedLimit struct {
	name  string
	limit *ratelimit.Limit
}

func (l *RateLimits) fields() []namedLimit {
	return []namedLimit{
		{"LoginPerAddress", &l.LoginPerAddress},
		{"LoginPerAccount", &l.LoginPerAccount},
		{"SignupPerAddress", &l.SignupPerAddress},
		{"SignupPerAccount", &l.SignupPerAccount},
	}
}

// allow counts the request against one limit and turns a refusal into a 429 rate_limited
// error with RetryAfter (the Responder writes it as Retry-After in whole seconds, rounded up).
//
// A limiter that fails lets the request through (fails open), with a warning and a metric to
// alert on. Failing closed would turn a limiter outage into an outage of login and sign-up for
// everybody — a denial of service an attacker could provoke by overloading the limiter — while
// failing open only removes one layer of defence for the outage's duration: every guess still
// pays for an argon2id hash, the answer to a wrong guess is the same as always, and common
// passwords are refused at sign-up. In distributed mode the process should wire a
// ratelimit.Fallback (Redis, then per-instance memory), so this path is reached only if both
// fail.
func (s *Service) allow(ctx context.Context, policy, key string, limit ratelimit.Limit) error {
	d, err := s.limiter.Allow(ctx, policy+":"+key, limit)
	if err != nil {
		if ctx.Err() != nil {
			return errs.From(ctx.Err())
		}
		s.metrics.limiterErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", policy)))
		s.log.LogAttrs(ctx, slog.LevelWarn, "rate limiter failed; letting the request through",
			slog.String("policy", policy), slog.String("error", err.Error()))
		return nil
	}
	if d.Allowed {
		return nil
	}
	s.metrics.rateLimited.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", policy)))
	retry := d.RetryAfter
	if retry < time.Second {
		retry = time.Second // Retry-After: 0 would invite an immediate retry
	}
	return errs.New(errs.RateLimited, "Too many attempts; try again later.").WithRetryAfter(retry)
}

// accountKey is a rate-limit key for an account identifier: lower-cased and trimmed, so that
// case variants count as one, and hashed, so that email addresses do not sit in the limiter's
// key space (and its monitoring) in clear.
func accountKey(kind, id string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(id))))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

// addressKey is the rate-limit key of the request's client address.
func (s *Service) addressKey(r *http.Request) string {
	a := s.clientAddr(r)
	switch {
	case !a.IsValid():
		// Not a TCP peer (an in-process transport): all such requests share one bucket.
		return "addr:unknown"
	case a.Is4():
		return "addr:" + a.String()
	default:
		// One IPv6 subscriber usually holds a whole /64; counting single addresses would let
		// it rotate through 2^64 of them.
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
}

// clientAddr is the address of the client: the connection's peer, unless the peer is a trusted
// proxy, in which case X-Forwarded-For is walked from the right (each proxy appends the address
// it received the request from) past the trusted proxies; the first other address is the
// client. Entries left of it were written by the client and are not believed.
func (s *Service) clientAddr(r *http.Request) netip.Addr {
	addr := parseAddr(r.RemoteAddr)
	if !s.trusted(addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := parseAddr(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				// Garbage from a hop we trust to write addresses: stop at the last
				// address we know.
				return addr
			}
			addr = a
			if !s.trusted(a) {
				return a
			}
		}
	}
	return addr
}

func (s *Service) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr parses "ip", "ip:port" or "[ipv6]:port"; the zero Addr if it is none of these.
// IPv4-mapped IPv6 addresses become IPv4 ones, so one client has one key.
func parseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// metrics are the gateway's own instruments (HTTP server metrics come from platform/web).
type metrics struct {
	rateLimited   metric.Int64Counter
	limiterErrors metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider, log *slog.Logger) metrics {
	meter := mp.Meter("github.com/piazza-social/piazza/services/gateway")
	var m metrics
	var err error
	// A failed instrument creation still returns a usable no-op instrument: log and go on.
	if m.rateLimited, err = meter.Int64Counter("gateway.rate_limit.rejected",
		metric.WithDescription("Requests refused by a rate limit, by policy."),
		metric.WithUnit("{request}")); err != nil {
		log.LogAttrs(context.Background(), slog.LevelWarn, "metric instrument not created", slog.String("error", err.Error()))
	}
	if m.limiterErrors, err = meter.Int64Counter("gateway.rate_limit.errors",
		metric.WithDescription("Rate-limiter failures; the request was let through (fail open), by policy."),
		metric.WithUnit("{request}")); err != nil {
		log.LogAttrs(context.Background(), slog.LevelWarn, "metric instrument not created", slog.String("error", err.Error()))
	}
	return m
}
