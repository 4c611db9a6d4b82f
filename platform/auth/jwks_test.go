package auth_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
)

// publisher stands in for the issuer's JWKS endpoint.
type publisher struct {
	mu      sync.Mutex
	doc     []byte
	err     error
	fetches int
	hook    func() // runs inside every fetch, outside the lock
}

func (p *publisher) fetch(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.fetches++
	doc, err, hook := p.doc, p.err, p.hook
	p.mu.Unlock()
	if hook != nil {
		hook()
	}
	return doc, err
}

func (p *publisher) serve(doc []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doc, p.err = doc, err
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches
}

func newCache(t *testing.T, p *publisher, now func() time.Time) *auth.JWKSCache {
	t.Helper()
	c, err := auth.NewJWKSCache(p.fetch, auth.JWKSCacheConfig{
		MinRefreshInterval: 10 * time.Second, MaxAge: 10 * time.Minute, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cacheFixture is a verifier over a JWKS cache over a publisher, with key
// a published and tokA signed by it.
type cacheFixture struct {
	a, b  ed25519.PrivateKey
	clk   *clock
	pub   *publisher
	cache *auth.JWKSCache
	v     *auth.Verifier
	tokA  string
}

func newCacheFixture(t *testing.T) *cacheFixture {
	t.Helper()
	f := &cacheFixture{a: newKey(t), b: newKey(t), clk: &clock{t0}}
	f.pub = &publisher{doc: newKeySet(t, f.a).JWKS()}
	f.cache = newCache(t, f.pub, f.clk.Now)
	f.v = newVerifier(t, f.cache, f.clk)
	f.tokA = issue(t, newIssuer(t, newKeySet(t, f.a), f.clk), "user-a", "s")
	return f
}

// verify checks tok, its code, and how many fetches have happened so far.
func (f *cacheFixture) verify(t *testing.T, tok string, want errs.Code, fetches int) {
	t.Helper()
	_, err := f.v.Verify(context.Background(), tok)
	if errs.CodeOf(err) != want {
		t.Fatalf("Verify: %v, want code %q", err, want)
	}
	if got := f.pub.count(); got != fetches {
		t.Fatalf("%d fetches, want %d", got, fetches)
	}
}

func TestJWKSCacheFetchesOnceOnANewKidAndThenVerifies(t *testing.T) {
	f := newCacheFixture(t)
	f.verify(t, f.tokA, "", 1)
	f.verify(t, f.tokA, "", 1)

	// The issuer rotates: b is published and signs.
	rotated := newKeySet(t, f.a, f.b)
	f.pub.serve(rotated.JWKS(), nil)
	f.clk.t = f.clk.t.Add(time.Minute)
	tokB := issue(t, newIssuer(t, rotated, f.clk), "user-b", "s")

	f.verify(t, tokB, "", 2)
	f.verify(t, tokB, "", 2)
	f.verify(t, f.tokA, "", 2)
}

func TestJWKSCacheRefreshesForUnknownKidsAtMostOncePerInterval(t *testing.T) {
	f := newCacheFixture(t)
	f.verify(t, f.tokA, "", 1)
	x := newKey(t)
	tokX := forge(t, jwt.SigningMethodEdDSA, x, map[string]any{"kid": kidOf(x)}, validClaims(t0))

	f.verify(t, tokX, errs.TokenInvalid, 1) // fetched just now: not again
	f.clk.t = f.clk.t.Add(9 * time.Second)
	f.verify(t, tokX, errs.TokenInvalid, 1)
	f.clk.t = f.clk.t.Add(2 * time.Second)
	f.verify(t, tokX, errs.TokenInvalid, 2)
	f.verify(t, tokX, errs.TokenInvalid, 2)
	f.verify(t, f.tokA, "", 2)
}

func TestJWKSCacheKeepsTheLastGoodKeysWhenAFetchFails(t *testing.T) {
	f := newCacheFixture(t)
	f.verify(t, f.tokA, "", 1)
	x := newKey(t)
	tokX := forge(t, jwt.SigningMethodEdDSA, x, map[string]any{"kid": kidOf(x)}, validClaims(t0))

	f.pub.serve(nil, errors.New("connection refused"))
	f.clk.t = f.clk.t.Add(11 * time.Minute) // keys are stale: the lookup refreshes, and fails
	f.verify(t, f.tokA, "", 2)
	// A kid we do not know while the issuer is down: maybe a new key, so
	// not token_invalid.
	f.clk.t = f.clk.t.Add(11 * time.Second)
	f.verify(t, tokX, errs.Unavailable, 3)
	f.verify(t, f.tokA, "", 3)

	// A broken document is a failed fetch too.
	f.pub.serve([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}]}`), nil)
	f.clk.t = f.clk.t.Add(11 * time.Second)
	f.verify(t, tokX, errs.Unavailable, 4)
	f.verify(t, f.tokA, "", 4)
	if err := f.cache.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh of a broken document succeeded")
	}

	// The issuer is back and publishes x: it verifies at the next refresh.
	f.pub.serve(newKeySet(t, f.a, x).JWKS(), nil)
	f.clk.t = f.clk.t.Add(11 * time.Second)
	f.verify(t, tokX, "", 6)
}

func TestJWKSCacheDropsAKeyRemovedFromTheSet(t *testing.T) {
	f := newCacheFixture(t)
	f.pub.serve(newKeySet(t, f.a, f.b).JWKS(), nil)
	f.verify(t, f.tokA, "", 1)
	f.pub.serve(newKeySet(t, f.b).JWKS(), nil) // a retired (or leaked)
	f.clk.t = f.clk.t.Add(9 * time.Minute)
	f.verify(t, f.tokA, "", 1)
	f.clk.t = f.clk.t.Add(2 * time.Minute) // older than MaxAge
	f.verify(t, f.tokA, errs.TokenInvalid, 2)
}

func TestJWKSCacheWithTheIssuerDownFromTheStart(t *testing.T) {
	f := newCacheFixture(t)
	f.pub.serve(nil, errors.New("connection refused"))
	f.verify(t, f.tokA, errs.Unavailable, 1)
	if err := f.cache.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh succeeded with the issuer down")
	}
	f.pub.serve(newKeySet(t, f.a).JWKS(), nil)
	f.clk.t = f.clk.t.Add(11 * time.Second)
	f.verify(t, f.tokA, "", 3)
}

func TestJWKSCacheRefreshIgnoresTheIntervalAndReportsSuccess(t *testing.T) {
	f := newCacheFixture(t)
	f.verify(t, f.tokA, "", 1)
	rotated := newKeySet(t, f.a, f.b)
	f.pub.serve(rotated.JWKS(), nil)
	if err := f.cache.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cache.PublicKey(context.Background(), rotated.SigningKeyID()); err != nil {
		t.Fatalf("key fetched by Refresh: %v", err)
	}
	if f.pub.count() != 2 {
		t.Fatalf("%d fetches, want 2", f.pub.count())
	}
}

func TestJWKSCacheCallerThatGaveUpDoesNotHoldBackTheNextLookup(t *testing.T) {
	f := newCacheFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.v.Verify(ctx, f.tokA)
	if errs.CodeOf(err) != errs.Canceled {
		t.Fatalf("Verify with a cancelled context: %v, want canceled", err)
	}
	// Same instant: had the aborted fetch counted, this one would be
	// rate-limited.
	f.verify(t, f.tokA, "", 1)
}

// tickingClock advances a minute every time it is read, so that the
// refresh interval never holds a fetch back and only the sharing does.
type tickingClock struct{ n atomic.Int64 }

func (c *tickingClock) Now() time.Time {
	return t0.Add(time.Duration(c.n.Add(1)) * time.Minute)
}

func TestJWKSCacheConcurrentMissesShareOneFetch(t *testing.T) {
	a := newKey(t)
	kid := kidOf(a)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pub := &publisher{doc: newKeySet(t, a).JWKS(), hook: func() {
		once.Do(func() { close(entered) })
		<-release
	}}
	clk := &tickingClock{}
	cache, err := auth.NewJWKSCache(pub.fetch, auth.JWKSCacheConfig{
		MinRefreshInterval: time.Second, MaxAge: 1000 * time.Hour, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}

	const n = 8
	var started atomic.Int32
	errc := make(chan error, n)
	for range n {
		go func() {
			started.Add(1)
			_, err := cache.PublicKey(context.Background(), kid)
			errc <- err
		}()
	}
	<-entered
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	close(release)
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("lookup: %v", err)
		}
	}
	if got := pub.count(); got != 1 {
		t.Fatalf("%d concurrent misses made %d fetches, want 1", n, got)
	}
}

func TestJWKSCacheLookupStopsWaitingWhenItsContextEnds(t *testing.T) {
	a := newKey(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pub := &publisher{doc: newKeySet(t, a).JWKS(), hook: func() {
		once.Do(func() { close(entered) })
		<-release
	}}
	cache := newCache(t, pub, (&clock{t0}).Now)
	done := make(chan error, 1)
	go func() {
		_, err := cache.PublicKey(context.Background(), kidOf(a))
		done <- err
	}()
	<-entered // a fetch is in flight and stuck

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cache.PublicKey(ctx, "another"); !errors.Is(err, context.Canceled) {
		t.Fatalf("lookup behind a stuck fetch: %v, want the context's error", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewJWKSCacheRejectsBadConfig(t *testing.T) {
	fetch := (&publisher{}).fetch
	for name, tc := range map[string]struct {
		fetch func(context.Context) ([]byte, error)
		cfg   auth.JWKSCacheConfig
	}{
		"no fetch":          {nil, auth.JWKSCacheConfig{}},
		"negative interval": {fetch, auth.JWKSCacheConfig{MinRefreshInterval: -time.Second}},
		"negative max age":  {fetch, auth.JWKSCacheConfig{MaxAge: -time.Second}},
	} {
		if _, err := auth.NewJWKSCache(tc.fetch, tc.cfg); err == nil {
			t.Errorf("NewJWKSCache with %s succeeded", name)
		}
	}
}

func TestHTTPFetcherFeedsTheCache(t *testing.T) {
	ks := newKeySet(t, newKey(t))
	status, body := http.StatusOK, ks.JWKS()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	fetch := auth.HTTPFetcher(srv.Client(), srv.URL+"/.well-known/jwks.json")

	cache, err := auth.NewJWKSCache(fetch, auth.JWKSCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.PublicKey(context.Background(), ks.SigningKeyID()); err != nil {
		t.Fatal(err)
	}

	for name, set := range map[string]func(){
		"an error status":   func() { status, body = http.StatusServiceUnavailable, ks.JWKS() },
		"an oversized body": func() { status, body = http.StatusOK, []byte(strings.Repeat(" ", 1<<20+1)) },
		"a wrong path":      func() { fetch = auth.HTTPFetcher(nil, srv.URL+"/nope") },
	} {
		mu.Lock()
		set()
		mu.Unlock()
		if _, err := fetch(context.Background()); err == nil {
			t.Errorf("fetch with %s succeeded", name)
		}
	}
}
