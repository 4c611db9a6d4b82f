package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
)

func TestIssuedTokenVerifiesWithEveryClaim(t *testing.T) {
	clk := &clock{t0}
	ks := newKeySet(t, newKey(t))
	iss := newIssuer(t, ks, clk)
	v := newVerifier(t, ks, clk)

	tok, exp, err := iss.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(auth.DefaultTTL); !exp.Equal(want) || exp.Location() != time.UTC {
		t.Fatalf("expiresAt %v, want %v in UTC", exp, want)
	}

	h := decodeHeader(t, tok)
	if h["alg"] != "EdDSA" || h["kid"] != ks.SigningKeyID() || h["typ"] != "JWT" {
		t.Fatalf("header %v, want alg EdDSA, kid %s, typ JWT", h, ks.SigningKeyID())
	}
	p := decodePayload(t, tok)
	if p["iss"] != testIssuer || p["sub"] != "user-1" || p["sid"] != "session-1" {
		t.Fatalf("payload %v: wrong iss/sub/sid", p)
	}
	if aud, _ := json.Marshal(p["aud"]); string(aud) != `["piazza"]` {
		t.Fatalf("aud %s, want [\"piazza\"]", aud)
	}
	if p["iat"] != float64(t0.Unix()) || p["exp"] != float64(exp.Unix()) {
		t.Fatalf("iat %v exp %v, want %d and %d", p["iat"], p["exp"], t0.Unix(), exp.Unix())
	}
	jti, _ := p["jti"].(string)
	if id, err := uuid.Parse(jti); err != nil || id.Version() != 7 {
		t.Fatalf("jti %q is not a UUIDv7 (%v)", jti, err)
	}

	clk.t = t0.Add(time.Minute)
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Claims{UserID: "user-1", SessionID: "session-1", TokenID: jti, IssuedAt: t0, ExpiresAt: exp}
	if c != want {
		t.Fatalf("claims %+v, want %+v", c, want)
	}

	tok2 := issue(t, iss, "user-1", "session-1")
	if decodePayload(t, tok2)["jti"] == jti {
		t.Fatal("two tokens share a jti")
	}
}

func TestIssuerTTLSetsExpiry(t *testing.T) {
	clk := &clock{t0.Add(500 * time.Millisecond)}
	ks := newKeySet(t, newKey(t))
	iss := newIssuer(t, ks, clk, func(c *auth.IssuerConfig) { c.TTL = time.Hour })
	tok, exp, err := iss.Issue("u", "s")
	if err != nil {
		t.Fatal(err)
	}
	// Claims carry whole seconds: the returned expiry must be the claim.
	if want := t0.Add(time.Hour); !exp.Equal(want) {
		t.Fatalf("expiresAt %v, want %v", exp, want)
	}
	c, err := newVerifier(t, ks, clk).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(exp) || !c.IssuedAt.Equal(t0) {
		t.Fatalf("claims iat %v exp %v, want %v and %v", c.IssuedAt, c.ExpiresAt, t0, exp)
	}
}

func TestIssueRejectsEmptyIdentifiers(t *testing.T) {
	iss := newIssuer(t, newKeySet(t, newKey(t)), &clock{t0})
	for _, ids := range [][2]string{{"", "s"}, {"u", ""}} {
		if _, _, err := iss.Issue(ids[0], ids[1]); err == nil {
			t.Errorf("Issue(%q, %q) succeeded", ids[0], ids[1])
		}
	}
}

func TestConstructorsRejectIncompleteConfig(t *testing.T) {
	ks := newKeySet(t, newKey(t))
	issuers := map[string]auth.IssuerConfig{
		"no keys":      {Issuer: "i", Audience: "a"},
		"no issuer":    {Keys: ks, Audience: "a"},
		"no audience":  {Keys: ks, Issuer: "i"},
		"negative TTL": {Keys: ks, Issuer: "i", Audience: "a", TTL: -time.Second},
	}
	for name, cfg := range issuers {
		if _, err := auth.NewIssuer(cfg); err == nil {
			t.Errorf("NewIssuer with %s succeeded", name)
		}
	}
	verifiers := map[string]auth.VerifierConfig{
		"no keys":         {Issuer: "i", Audience: "a"},
		"no issuer":       {Keys: ks, Audience: "a"},
		"no audience":     {Keys: ks, Issuer: "i"},
		"negative leeway": {Keys: ks, Issuer: "i", Audience: "a", Leeway: -time.Second},
	}
	for name, cfg := range verifiers {
		if _, err := auth.NewVerifier(cfg); err == nil {
			t.Errorf("NewVerifier with %s succeeded", name)
		}
	}
}

func TestRotationBothKeysVerifyAndTheNewOneSigns(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t0}
	dir := t.TempDir()

	before, err := auth.LoadKeyDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	oldTok := issue(t, newIssuer(t, before, clk), "user-1", "s-old")

	// Rotation, step 1: add a key; both are published, the new one signs.
	if _, err := auth.GenerateKeyFile(dir); err != nil {
		t.Fatal(err)
	}
	during, err := auth.LoadKeyDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if during.SigningKeyID() == before.SigningKeyID() {
		t.Fatal("the new key does not sign after the rotation")
	}
	newTok := issue(t, newIssuer(t, during, clk), "user-1", "s-new")
	if kid := decodeHeader(t, newTok)["kid"]; kid != during.SigningKeyID() {
		t.Fatalf("new token signed by %v, want %s", kid, during.SigningKeyID())
	}
	published, err := auth.ParseJWKS(during.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := published[before.SigningKeyID()]; !ok || len(published) != 2 {
		t.Fatalf("JWKS during the rotation publishes %d keys, want the old and the new", len(published))
	}
	v := newVerifier(t, during, clk)
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("%s token during the rotation: %v", name, err)
		}
	}

	// Step 2: retire the old key; its tokens stop verifying.
	files, _ := keyFileNames(t, dir)
	if err := removeFile(dir, files[0]); err != nil {
		t.Fatal(err)
	}
	after, err := auth.LoadKeyDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if after.SigningKeyID() != during.SigningKeyID() {
		t.Fatal("retiring the old key changed the signing key")
	}
	v = newVerifier(t, after, clk)
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Errorf("new token after the rotation: %v", err)
	}
	_, err = v.Verify(ctx, oldTok)
	wantCode(t, err, errs.TokenInvalid)
}

// attackCase is a token and the code Verify must answer ("" = accepted).
type attackCase struct {
	name  string
	token string
	want  errs.Code
}

// attackSetup builds a verifier whose key set holds two keys (prev and cur,
// cur signing, as during a rotation), its clock at t0, and the attack table.
func attackSetup(t testing.TB) (*auth.Verifier, []attackCase) {
	t.Helper()
	prevKey, curKey, otherKey := newKey(t), newKey(t), newKey(t)
	ks := newKeySet(t, prevKey, curKey)
	kid := ks.SigningKeyID()
	prevKID := auth.KeyID(prevKey.Public().(ed25519.PublicKey))
	otherKID := auth.KeyID(otherKey.Public().(ed25519.PublicKey))
	pub := curKey.Public().(ed25519.PublicKey)
	clk := &clock{t0}
	v := newVerifier(t, ks, clk)

	valid := issue(t, newIssuer(t, ks, &clock{t0.Add(-time.Minute)}), "user-1", "session-1")
	own := func(c jwt.MapClaims) string { // correctly signed by the current key
		return forge(t, jwt.SigningMethodEdDSA, curKey, map[string]any{"kid": kid}, c)
	}
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := validClaims(t0.Add(-time.Minute))
		mod(c)
		return c
	}
	without := func(claim string) jwt.MapClaims {
		return with(func(c jwt.MapClaims) { delete(c, claim) })
	}
	expired := func(c jwt.MapClaims) {
		c["iat"] = t0.Add(-time.Hour).Unix()
		c["exp"] = t0.Add(-45 * time.Minute).Unix()
	}

	// The public key in every form someone might feed an HMAC.
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	x := base64.RawURLEncoding.EncodeToString(pub)
	pubJWK := []byte(`{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"` + kid + `","use":"sig","alg":"EdDSA"}`)
	hs := func(m jwt.SigningMethod, secret []byte) string {
		return forge(t, m, secret, map[string]any{"kid": kid}, validClaims(t0.Add(-time.Minute)))
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	parts := strings.Split(valid, ".")
	header, payload, sig := parts[0], parts[1], parts[2]
	otherValid := issue(t, newIssuer(t, ks, &clock{t0.Add(-time.Minute)}), "user-2", "session-2")

	// 64 signature bytes are 86 base64 characters whose last one carries 4
	// unused bits; setting one gives another spelling of the same bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	sloppySig := sig[:len(sig)-1] + string(alphabet[last^1])

	otherAudience := issue(t, newIssuer(t, ks, &clock{t0.Add(-time.Minute)},
		func(c *auth.IssuerConfig) { c.Audience = "another-app" }), "user-1", "session-1")
	otherIssuer := issue(t, newIssuer(t, ks, &clock{t0.Add(-time.Minute)},
		func(c *auth.IssuerConfig) { c.Issuer = "someone-else" }), "user-1", "session-1")
	expiredTok := issue(t, newIssuer(t, ks, &clock{t0.Add(-time.Hour)}), "user-1", "session-1")

	return v, []attackCase{
		{"valid token", valid, ""},
		{"token signed by the previous key during a rotation", forge(t, jwt.SigningMethodEdDSA, prevKey,
			map[string]any{"kid": prevKID}, validClaims(t0.Add(-time.Minute))), ""},
		{"audience list containing ours", own(with(func(c jwt.MapClaims) { c["aud"] = []string{"x", testAudience} })), ""},
		{"audience as a single string", own(with(func(c jwt.MapClaims) { c["aud"] = testAudience })), ""},
		{"expired within the leeway", own(with(func(c jwt.MapClaims) { c["exp"] = t0.Add(-10 * time.Second).Unix() })), ""},
		{"nbf within the leeway", own(with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(10 * time.Second).Unix() })), ""},

		{"empty", "", errs.TokenMissing},
		{"garbage", "garbage", errs.TokenInvalid},
		{"three garbage segments", "a.b.c", errs.TokenInvalid},
		{"dots only", "..", errs.TokenInvalid},
		{"two-part token", header + "." + payload, errs.TokenInvalid},
		{"four-part token", valid + "." + sig, errs.TokenInvalid},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + payload + "." + sig, errs.TokenInvalid},
		{"payload not JSON", header + "." + base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + sig, errs.TokenInvalid},
		{"oversized token", valid + strings.Repeat("A", 9000), errs.TokenInvalid},
		{"bearer prefix left in", "Bearer " + valid, errs.TokenInvalid},

		{"alg none, unsigned", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			map[string]any{"kid": kid}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"alg none, real signature kept", segment(t, map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}) +
			"." + payload + "." + sig, errs.TokenInvalid},
		{"alg NONE in capitals", segment(t, map[string]any{"alg": "NONE", "kid": kid}) + "." + payload + ".", errs.TokenInvalid},
		{"alg missing", segment(t, map[string]any{"kid": kid}) + "." + payload + "." + sig, errs.TokenInvalid},
		{"HS256 with the raw public key as secret", hs(jwt.SigningMethodHS256, pub), errs.TokenInvalid},
		{"HS256 with the PEM public key as secret", hs(jwt.SigningMethodHS256, pubPEM), errs.TokenInvalid},
		{"HS256 with the JWK as secret", hs(jwt.SigningMethodHS256, pubJWK), errs.TokenInvalid},
		{"HS256 with the JWKS document as secret", hs(jwt.SigningMethodHS256, ks.JWKS()), errs.TokenInvalid},
		{"HS256 with the JWK x as secret", hs(jwt.SigningMethodHS256, []byte(x)), errs.TokenInvalid},
		{"HS512 with the raw public key as secret", hs(jwt.SigningMethodHS512, pub), errs.TokenInvalid},
		{"RS256 header and signature", forge(t, jwt.SigningMethodRS256, rsaKey,
			map[string]any{"kid": kid}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"ES256 header and signature", forge(t, jwt.SigningMethodES256, ecKey,
			map[string]any{"kid": kid}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},

		{"EdDSA signed by another key under our kid", forge(t, jwt.SigningMethodEdDSA, otherKey,
			map[string]any{"kid": kid}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"tampered payload: sub changed, signature kept", replacePayload(t, valid,
			with(func(c jwt.MapClaims) { c["sub"] = "admin" })), errs.TokenInvalid},
		{"tampered payload: exp extended, signature kept", replacePayload(t, valid,
			with(func(c jwt.MapClaims) { c["exp"] = t0.Add(24 * time.Hour).Unix() })), errs.TokenInvalid},
		{"tampered header: kid swapped to the previous key", segment(t, map[string]any{"alg": "EdDSA", "kid": prevKID, "typ": "JWT"}) +
			"." + payload + "." + sig, errs.TokenInvalid},
		{"signature stripped", header + "." + payload + ".", errs.TokenInvalid},
		{"signature of another token", header + "." + payload + "." + strings.Split(otherValid, ".")[2], errs.TokenInvalid},
		{"signature in a non-canonical base64 spelling", header + "." + payload + "." + sloppySig, errs.TokenInvalid},
		{"signature not base64", header + "." + payload + ".!!!", errs.TokenInvalid},

		{"another audience", otherAudience, errs.TokenInvalid},
		{"another issuer", otherIssuer, errs.TokenInvalid},
		{"expired", expiredTok, errs.TokenExpired},
		{"expired with a bad signature", forge(t, jwt.SigningMethodEdDSA, otherKey,
			map[string]any{"kid": kid}, with(expired)), errs.TokenInvalid},
		{"expired and tampered", replacePayload(t, expiredTok, with(func(c jwt.MapClaims) {
			expired(c)
			c["sub"] = "admin"
		})), errs.TokenInvalid},
		{"expired and another audience", own(with(func(c jwt.MapClaims) {
			expired(c)
			c["aud"] = "another-app"
		})), errs.TokenInvalid},
		{"expired and no sid", own(with(func(c jwt.MapClaims) {
			expired(c)
			delete(c, "sid")
		})), errs.TokenInvalid},
		{"expired, alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			map[string]any{"kid": kid}, with(expired)), errs.TokenInvalid},
		{"issued in the future", own(with(func(c jwt.MapClaims) {
			c["iat"] = t0.Add(time.Hour).Unix()
			c["exp"] = t0.Add(2 * time.Hour).Unix()
		})), errs.TokenInvalid},
		{"not valid yet (nbf)", own(with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Hour).Unix() })), errs.TokenInvalid},
		{"exp not after iat", own(with(func(c jwt.MapClaims) { c["exp"] = c["iat"] })), errs.TokenInvalid},

		{"missing kid", forge(t, jwt.SigningMethodEdDSA, curKey, nil, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"empty kid", forge(t, jwt.SigningMethodEdDSA, curKey, map[string]any{"kid": ""}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"kid not a string", forge(t, jwt.SigningMethodEdDSA, curKey, map[string]any{"kid": 1}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"kid of an unknown key", forge(t, jwt.SigningMethodEdDSA, otherKey,
			map[string]any{"kid": otherKID}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"unknown key embedded as a jwk header", forge(t, jwt.SigningMethodEdDSA, otherKey, map[string]any{
			"kid": otherKID,
			"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": otherKID,
				"x": base64.RawURLEncoding.EncodeToString(otherKey.Public().(ed25519.PublicKey))},
		}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},
		{"crit header", forge(t, jwt.SigningMethodEdDSA, curKey,
			map[string]any{"kid": kid, "crit": []string{"exp"}}, validClaims(t0.Add(-time.Minute))), errs.TokenInvalid},

		{"no exp", own(without("exp")), errs.TokenInvalid},
		{"no iat", own(without("iat")), errs.TokenInvalid},
		{"no sub", own(without("sub")), errs.TokenInvalid},
		{"no sid", own(without("sid")), errs.TokenInvalid},
		{"no jti", own(without("jti")), errs.TokenInvalid},
		{"no iss", own(without("iss")), errs.TokenInvalid},
		{"no aud", own(without("aud")), errs.TokenInvalid},
		{"sub not a string", own(with(func(c jwt.MapClaims) { c["sub"] = 42 })), errs.TokenInvalid},
		{"exp not a number", own(with(func(c jwt.MapClaims) { c["exp"] = true })), errs.TokenInvalid},
		{"aud list with a non-string", own(with(func(c jwt.MapClaims) { c["aud"] = []any{testAudience, 1} })), errs.TokenInvalid},
	}
}

func TestVerifyAttacks(t *testing.T) {
	v, cases := attackSetup(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			wantCode(t, err, tc.want)
		})
	}
}

func TestVerifyExpiryBoundaryHonoursLeeway(t *testing.T) {
	clk := &clock{t0}
	ks := newKeySet(t, newKey(t))
	tok, exp, err := newIssuer(t, ks, clk).Issue("u", "s")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, ks, clk) // leeway 30s
	clk.t = exp.Add(29 * time.Second)
	_, err = v.Verify(context.Background(), tok)
	wantCode(t, err, "")
	clk.t = exp.Add(30 * time.Second)
	_, err = v.Verify(context.Background(), tok)
	wantCode(t, err, errs.TokenExpired)
}

// swappableSource is a key source whose keys the test changes between calls,
// as a JWKS cache's change when the issuer retires or replaces a key.
type swappableSource struct{ keys map[string]ed25519.PublicKey }

func (s *swappableSource) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, auth.ErrUnknownKey
}

func TestAnAcceptedTokenIsRefusedOnceItsKeyIsRetiredOrReplaced(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t0}
	ks := newKeySet(t, newKey(t))
	tok := issue(t, newIssuer(t, ks, clk), "u", "s")
	kid := ks.SigningKeyID()
	signing, err := ks.PublicKey(ctx, kid)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	src := &swappableSource{keys: map[string]ed25519.PublicKey{kid: signing}}
	v := newVerifier(t, src, clk)
	for _, step := range []struct {
		name string
		key  ed25519.PublicKey // nil: the kid is no longer published
		want errs.Code
	}{
		{"first time", signing, ""},
		{"again", signing, ""},
		{"key retired", nil, errs.TokenInvalid},
		{"key back", signing, ""},
		{"another key under the same kid", other, errs.TokenInvalid},
		{"key back again", signing, ""},
	} {
		delete(src.keys, kid)
		if step.key != nil {
			src.keys[kid] = step.key
		}
		_, err := v.Verify(ctx, tok)
		if errs.CodeOf(err) != step.want {
			t.Fatalf("%s: got %v, want code %q", step.name, err, step.want)
		}
	}
}

func TestAnAcceptedTokenStillExpiresAndIsRefusedBeforeItsTime(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t0}
	ks := newKeySet(t, newKey(t))
	tok, exp, err := newIssuer(t, ks, clk).Issue("u", "s")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, ks, clk) // leeway 30s
	for _, step := range []struct {
		name string
		at   time.Time
		want errs.Code
	}{
		{"at issue", t0, ""},
		{"before its issue time, beyond the leeway", t0.Add(-31 * time.Second), errs.TokenInvalid},
		{"within its lifetime", exp.Add(-time.Second), ""},
		{"past its expiry and the leeway", exp.Add(30 * time.Second), errs.TokenExpired},
	} {
		clk.t = step.at
		_, err := v.Verify(ctx, tok)
		if errs.CodeOf(err) != step.want {
			t.Fatalf("%s: got %v, want code %q", step.name, err, step.want)
		}
	}
}

func TestTokensBeyondTheRememberedNumberStillVerify(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t0}
	ks := newKeySet(t, newKey(t))
	iss := newIssuer(t, ks, clk)
	v, err := auth.NewVerifier(auth.VerifierConfig{
		Keys: ks, Issuer: testIssuer, Audience: testAudience, Now: clk.Now, RememberedTokens: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 5)
	for i := range toks {
		toks[i] = issue(t, iss, "u", "s"+strconv.Itoa(i))
	}
	for round := range 3 {
		for i, tok := range toks {
			c, err := v.Verify(ctx, tok)
			if err != nil || c.SessionID != "s"+strconv.Itoa(i) {
				t.Fatalf("round %d, token %d: %+v, %v", round, i, c, err)
			}
		}
	}
}

func TestVerifyKeepsTheReasonInTheInternalCause(t *testing.T) {
	v, cases := attackSetup(t)
	byName := map[string]string{}
	for _, c := range cases {
		byName[c.name] = c.token
	}
	_, err := v.Verify(context.Background(), byName["another audience"])
	if err == nil || !strings.Contains(err.Error(), "another-app") {
		t.Fatalf("error %v does not say which audience was wrong", err)
	}
	// Refused by the algorithm allow-list, before any key is touched.
	_, err = v.Verify(context.Background(), byName["HS256 with the raw public key as secret"])
	if !errors.Is(err, jwt.ErrTokenSignatureInvalid) || !strings.Contains(err.Error(), "signing method HS256 is invalid") {
		t.Fatalf("error %v does not say the algorithm is not allowed", err)
	}
	_, err = v.Verify(context.Background(), byName["alg none, unsigned"])
	if !strings.Contains(err.Error(), "signing method none is invalid") {
		t.Fatalf("error %v does not say the algorithm is not allowed", err)
	}
}

// failingSource cannot answer, like a JWKS cache whose issuer is down.
type failingSource struct{ err error }

func (f failingSource) PublicKey(context.Context, string) (ed25519.PublicKey, error) {
	return nil, f.err
}

func TestVerifyWhenTheKeySourceCannotAnswer(t *testing.T) {
	tok := issue(t, newIssuer(t, newKeySet(t, newKey(t)), &clock{t0}), "u", "s")
	for _, tc := range []struct {
		err  error
		want errs.Code
	}{
		{errors.New("connection refused"), errs.Unavailable},
		{context.Canceled, errs.Canceled},
		{context.DeadlineExceeded, errs.DeadlineExceeded},
		{auth.ErrUnknownKey, errs.TokenInvalid},
	} {
		_, err := newVerifier(t, failingSource{tc.err}, &clock{t0}).Verify(context.Background(), tok)
		if errs.CodeOf(err) != tc.want {
			t.Errorf("source error %v: got %v, want code %s", tc.err, err, tc.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header string
		token  string
		want   errs.Code
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", ""},
		{"bearer abc.def.ghi", "abc.def.ghi", ""},
		{"BEARER abc.def.ghi", "abc.def.ghi", ""},
		{"Bearer   abc.def.ghi", "abc.def.ghi", ""},
		{" Bearer abc.def.ghi ", "abc.def.ghi", ""},
		{"", "", errs.TokenMissing},
		{"   ", "", errs.TokenMissing},
		{"Bearer", "", errs.TokenInvalid},
		{"Bearer ", "", errs.TokenInvalid},
		{"Bearerabc.def.ghi", "", errs.TokenInvalid},
		{"Basic dXNlcjpwYXNzd29yZA==", "", errs.TokenInvalid},
		{"Token abc.def.ghi", "", errs.TokenInvalid},
		{"Bearer abc def", "", errs.TokenInvalid},
		{"Bearer abc\tdef", "", errs.TokenInvalid},
		{"abc.def.ghi", "", errs.TokenInvalid},
	} {
		got, err := auth.BearerToken(tc.header)
		if errs.CodeOf(err) != tc.want || got != tc.token {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, code %q", tc.header, got, err, tc.token, tc.want)
		}
		if err != nil {
			wantCode(t, err, tc.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	v, cases := attackSetup(f)
	for _, c := range cases {
		f.Add(c.token)
	}
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	f.Add("eyJhbGciOiJFZERTQSIsImtpZCI6e319.e30.AA")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			if c.UserID == "" || c.SessionID == "" || c.TokenID == "" || !c.ExpiresAt.After(c.IssuedAt) {
				t.Fatalf("accepted %q with incomplete claims %+v", token, c)
			}
			return
		}
		e, ok := err.(*errs.Error)
		if !ok {
			t.Fatalf("error %T %v is not an *errs.Error", err, err)
		}
		switch e.Code {
		case errs.TokenMissing, errs.TokenInvalid, errs.TokenExpired:
			if e.Message != clientMessages[e.Code] {
				t.Fatalf("message %q is not the client-safe one", e.Message)
			}
		default:
			t.Fatalf("code %s for %q, want a token code", e.Code, token)
		}
	})
}
