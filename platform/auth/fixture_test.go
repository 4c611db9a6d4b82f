package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
)

const (
	testIssuer   = "piazza-user"
	testAudience = "piazza"
)

// t0 is the fixed "now" of the tests; nothing depends on the wall clock.
var t0 = time.Date(2026, 11, 27, 5, 30, 0, 0, time.UTC)

// clock is a settable time source for Issuer and Verifier.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeySet(t testing.TB, keys ...ed25519.PrivateKey) *auth.KeySet {
	t.Helper()
	ks, err := auth.NewKeySet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func newIssuer(t testing.TB, ks *auth.KeySet, clk *clock, mod ...func(*auth.IssuerConfig)) *auth.Issuer {
	t.Helper()
	cfg := auth.IssuerConfig{Keys: ks, Issuer: testIssuer, Audience: testAudience, Now: clk.Now}
	for _, m := range mod {
		m(&cfg)
	}
	iss, err := auth.NewIssuer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func newVerifier(t testing.TB, src auth.KeySource, clk *clock) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Keys: src, Issuer: testIssuer, Audience: testAudience, Leeway: 30 * time.Second, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func issue(t testing.TB, iss *auth.Issuer, user, session string) string {
	t.Helper()
	tok, _, err := iss.Issue(user, session)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// validClaims returns the claims an Issuer would put in a token issued at
// now, for hand-made tokens that tests then break one way at a time.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIssuer,
		"aud": []string{testAudience},
		"sub": "user-1",
		"sid": "session-1",
		"jti": "0193b8a0-0000-7000-8000-000000000001",
		"iat": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(),
	}
}

// forge signs claims with method and key under the given header fields
// (alg and typ are set from method; a nil value deletes a field).
func forge(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge %s token: %v", method.Alg(), err)
	}
	return s
}

// segment encodes v as a JWT segment.
func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// replacePayload swaps the payload segment of tok, keeping header and
// signature.
func replacePayload(t testing.TB, tok string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	parts[1] = segment(t, claims)
	return strings.Join(parts, ".")
}

// decodePayload returns the claims of tok without verifying anything.
func decodePayload(t testing.TB, tok string) jwt.MapClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.MapClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// decodeHeader returns the header of tok without verifying anything.
func decodeHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// wantCode fails t unless err is an *errs.Error with code want, carrying
// the client-safe message that goes with it ("" for no error).
func wantCode(t testing.TB, err error, want errs.Code) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	e, ok := err.(*errs.Error)
	if !ok {
		t.Fatalf("got %T %v, want *errs.Error with code %s", err, err, want)
	}
	if e.Code != want {
		t.Fatalf("got code %s (%v), want %s", e.Code, e, want)
	}
	if msg, ok := clientMessages[e.Code]; ok && e.Message != msg {
		t.Fatalf("message %q, want %q", e.Message, msg)
	}
}

var clientMessages = map[errs.Code]string{
	errs.TokenMissing: "access token missing",
	errs.TokenExpired: "access token expired",
	errs.TokenInvalid: "access token invalid",
}
