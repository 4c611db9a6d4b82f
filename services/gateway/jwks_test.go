package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway"
)

func TestJWKSIsServedFromUserServiceWithCachingHeaders(t *testing.T) {
	h := newHarness(t)
	w := h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	if w.Code != http.StatusOK || w.Body.String() != string(h.users.jwks) {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	etag := w.Header().Get("ETag")
	if len(etag) < 3 || etag[0] != '"' {
		t.Fatalf("ETag %q", etag)
	}

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		w = h.do(req{method: "GET", path: "/.well-known/jwks.json", header: http.Header{"If-None-Match": {inm}}})
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q etag %q", inm, w.Code, w.Body, w.Header().Get("ETag"))
		}
	}
	w = h.do(req{method: "GET", path: "/.well-known/jwks.json", header: http.Header{"If-None-Match": {`"stale"`}}})
	if w.Code != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", w.Code)
	}
}

func TestJWKSIsReusedForTheCacheTTLThenRefetched(t *testing.T) {
	h := newHarness(t, func(c *gateway.Config) { c.JWKSCacheTTL = time.Minute })
	for range 3 {
		h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	}
	if n := h.users.callCount("GetSigningKeys"); n != 1 {
		t.Fatalf("fetched %d times within the TTL", n)
	}

	// A rotation: the next fetch, after the TTL, shows the new set.
	h.users.mu.Lock()
	h.users.jwks = []byte(`{"keys":[{"kty":"OKP","kid":"k1"},{"kty":"OKP","kid":"k2"}]}`)
	h.users.mu.Unlock()
	h.clock.Advance(time.Minute)
	w := h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	if w.Body.String() != `{"keys":[{"kty":"OKP","kid":"k1"},{"kty":"OKP","kid":"k2"}]}` {
		t.Errorf("after the TTL: %s", w.Body)
	}
}

func TestJWKSOutageServesThePreviousSetOrA503(t *testing.T) {
	h := newHarness(t)
	h.users.setFail("GetSigningKeys", errs.New(errs.Unavailable, "down"))
	wantProblem(t, h.do(req{method: "GET", path: "/.well-known/jwks.json"}), http.StatusServiceUnavailable, errs.Unavailable)

	h.users.setFail("GetSigningKeys", nil)
	if w := h.do(req{method: "GET", path: "/.well-known/jwks.json"}); w.Code != http.StatusOK {
		t.Fatalf("got %d", w.Code)
	}
	h.users.setFail("GetSigningKeys", errs.New(errs.Unavailable, "down"))
	h.clock.Advance(time.Hour)
	if w := h.do(req{method: "GET", path: "/.well-known/jwks.json"}); w.Code != http.StatusOK || w.Body.String() != string(h.users.jwks) {
		t.Errorf("during the outage: %d %s", w.Code, w.Body)
	}
}

func TestAGatewayWithoutIdentityDependenciesAnswers503OnThoseRoutes(t *testing.T) {
	g, _ := newGateway(t)
	w := do(t, g.Handler(), http.MethodGet, "/v1/users/someone")
	p := decodeProblem(t, w)
	if w.Code != http.StatusServiceUnavailable || p.Code != string(errs.Unavailable) {
		t.Fatalf("got %d %+v", w.Code, p)
	}
}

func TestAMalformedKeySetFromUserServiceIsAnInternalError(t *testing.T) {
	h := newHarness(t)
	h.users.mu.Lock()
	h.users.jwks = []byte(`{"not":"a key set"}`)
	h.users.mu.Unlock()
	wantProblem(t, h.do(req{method: "GET", path: "/.well-known/jwks.json"}), http.StatusInternalServerError, errs.Internal)
}
