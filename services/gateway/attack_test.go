package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/piazza-social/piazza/platform/auth"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway"
)

const (
	jwtIssuer   = "piazza-user"
	jwtAudience = "piazza"
)

func newSigningKeys(t *testing.T) (*auth.KeySet, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := auth.NewKeySet(priv)
	if err != nil {
		t.Fatal(err)
	}
	return ks, pub
}

func newIssuer(t *testing.T, ks *auth.KeySet, now func() time.Time, audience string) *auth.Issuer {
	t.Helper()
	iss, err := auth.NewIssuer(auth.IssuerConfig{Keys: ks, Issuer: jwtIssuer, Audience: audience, TTL: accessTTL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// TestForgedAndStaleAccessTokensAreRejectedByTheRealVerifier serves the gateway with
// platform/auth's verifier and presents the classic attacks on JWTs; each must end in a 401
// with the right code, and only the genuine token may pass.
func TestForgedAndStaleAccessTokensAreRejectedByTheRealVerifier(t *testing.T) {
	ks, pub := newSigningKeys(t)
	h := newHarness(t, func(c *gateway.Config) {
		v, err := auth.NewVerifier(auth.VerifierConfig{Keys: ks, Issuer: jwtIssuer, Audience: jwtAudience, Leeway: time.Second, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		c.Tokens = v
	})
	victim := h.signup("victim")
	other := h.signup("other")
	var sid string
	h.users.mu.Lock()
	sid = h.users.access[victim.AccessToken].SessionID
	h.users.mu.Unlock()

	genuine, _, err := newIssuer(t, ks, h.clock.Now, jwtAudience).Issue(victim.User.ID, sid)
	if err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now()
	claims := jwt.MapClaims{
		"sub": victim.User.ID, "sid": sid, "jti": "0190a0a0-0000-7000-8000-000000000000",
		"iss": jwtIssuer, "aud": []string{jwtAudience},
		"iat": now.Unix(), "exp": now.Add(accessTTL).Unix(),
	}
	sign := func(m jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = ks.SigningKeyID()
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Swap the payload for one naming another user, keeping the signature.
	parts := strings.Split(genuine, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), victim.User.ID, other.User.ID, 1)))
	tampered := strings.Join(parts, ".")
	otherAudience, _, err := newIssuer(t, ks, h.clock.Now, "somebody-else").Issue(victim.User.ID, sid)
	if err != nil {
		t.Fatal(err)
	}
	foreignKeys, _ := newSigningKeys(t)
	foreign, _, err := newIssuer(t, foreignKeys, h.clock.Now, jwtAudience).Issue(victim.User.ID, sid)
	if err != nil {
		t.Fatal(err)
	}

	if w := h.do(req{method: "GET", path: "/v1/me", token: genuine}); w.Code != http.StatusOK {
		t.Fatalf("the genuine token: %d %s", w.Code, w.Body)
	}
	for name, token := range map[string]string{
		"alg none":                           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType),
		"HS256 keyed with the public key":    sign(jwt.SigningMethodHS256, []byte(pub)),
		"tampered payload":                   tampered,
		"another audience":                   otherAudience,
		"signed by a key not in the key set": foreign,
		"not a JWT":                          "garbage",
		"truncated":                          genuine[:len(genuine)-10],
	} {
		t.Run(name, func(t *testing.T) {
			w := h.do(req{method: "GET", path: "/v1/me", token: token})
			wantProblem(t, w, http.StatusUnauthorized, errs.TokenInvalid)
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		h.clock.Advance(accessTTL + time.Minute)
		w := h.do(req{method: "GET", path: "/v1/me", token: genuine})
		wantProblem(t, w, http.StatusUnauthorized, errs.TokenExpired)
		if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
}
