package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// signingAlg is the JWS algorithm of every access token (RFC 8037 §3.1).
const signingAlg = "EdDSA"

// DefaultTTL is the lifetime of an access token unless configured otherwise.
const DefaultTTL = 15 * time.Minute

// tokenClaims is the claims set of an access token, both ways.
type tokenClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
}

// IssuerConfig configures an [Issuer].
type IssuerConfig struct {
	// Keys signs with its signing key. Required.
	Keys *KeySet
	// Issuer is the iss claim, identifying the issuing service. Required.
	Issuer string
	// Audience is the aud claim, identifying who accepts the tokens.
	// Required.
	Audience string
	// TTL is the token lifetime; default [DefaultTTL]. Expiry has a
	// resolution of one second.
	TTL time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Issuer signs access tokens. It is safe for concurrent use.
type Issuer struct {
	keys     *KeySet
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
}

// NewIssuer returns an Issuer for cfg, or an error naming what is missing.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	switch {
	case cfg.Keys == nil:
		return nil, errors.New("auth: issuer: Keys is required")
	case cfg.Issuer == "":
		return nil, errors.New("auth: issuer: Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("auth: issuer: Audience is required")
	case cfg.TTL < 0:
		return nil, errors.New("auth: issuer: TTL must not be negative")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{keys: cfg.Keys, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL, now: cfg.Now}, nil
}

// Issue returns a signed access token for the user's session and its expiry
// time (the exp claim, in UTC). The token id (jti) is a fresh UUIDv7.
func (i *Issuer) Issue(userID, sessionID string) (token string, expiresAt time.Time, err error) {
	if userID == "" || sessionID == "" {
		return "", time.Time{}, errors.New("auth: issue: user id and session id are required")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue: token id: %w", err)
	}
	// Claims carry whole seconds; truncating here makes the returned
	// expiry exactly the exp claim.
	now := i.now().UTC().Truncate(time.Second)
	exp := now.Add(i.ttl).Truncate(time.Second)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{i.audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        id.String(),
		},
		SessionID: sessionID,
	})
	t.Header["kid"] = i.keys.signerKID
	s, err := t.SignedString(i.keys.signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue: sign: %w", err)
	}
	return s, exp, nil
}
