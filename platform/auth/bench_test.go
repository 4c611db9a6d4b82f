package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/auth"
)

// BenchmarkVerify measures the per-request cost of checking an access token
// against an in-process key set (two keys, as during a rotation), presented
// again and again as a client does until it expires.
func BenchmarkVerify(b *testing.B) {
	ks := newKeySet(b, newKey(b), newKey(b))
	clk := &clock{t0}
	tok := issue(b, newIssuer(b, ks, clk), "0193b8a0-0000-7000-8000-000000000001", "0193b8a0-0000-7000-8000-000000000002")
	v := newVerifier(b, ks, clk)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFirstSight is BenchmarkVerify for a verifier that remembers
// no token: the full check (signature included) that a token costs the first
// time a verifier sees it.
func BenchmarkVerifyFirstSight(b *testing.B) {
	ks := newKeySet(b, newKey(b), newKey(b))
	clk := &clock{t0}
	tok := issue(b, newIssuer(b, ks, clk), "0193b8a0-0000-7000-8000-000000000001", "0193b8a0-0000-7000-8000-000000000002")
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Keys: ks, Issuer: testIssuer, Audience: testAudience, Now: clk.Now, RememberedTokens: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyJWKSCache is BenchmarkVerify with the keys coming from a
// warm JWKS cache, as in every service but the issuer.
func BenchmarkVerifyJWKSCache(b *testing.B) {
	ks := newKeySet(b, newKey(b), newKey(b))
	clk := &clock{t0}
	tok := issue(b, newIssuer(b, ks, clk), "0193b8a0-0000-7000-8000-000000000001", "0193b8a0-0000-7000-8000-000000000002")
	doc := ks.JWKS()
	cache, err := auth.NewJWKSCache(func(context.Context) ([]byte, error) { return doc, nil },
		auth.JWKSCacheConfig{MaxAge: time.Hour, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	v := newVerifier(b, cache, clk)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRejectsGarbage measures the cost of refusing an unsigned
// token, the cheapest thing an attacker can send.
func BenchmarkVerifyRejectsGarbage(b *testing.B) {
	ks := newKeySet(b, newKey(b))
	v := newVerifier(b, ks, &clock{t0})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, "eyJhbGciOiJub25lIn0.e30."); err == nil {
			b.Fatal("accepted")
		}
	}
}
