package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/piazza-social/piazza/platform/errs"
)

// Client-safe messages; the reason a token was refused goes into the
// error's internal cause, never in front of the client.
const (
	msgMissing = "access token missing"
	msgExpired = "access token expired"
	msgInvalid = "access token invalid"
)

// DefaultLeeway is the clock skew tolerated between issuer and verifier
// unless configured otherwise.
const DefaultLeeway = 30 * time.Second

// maxTokenLen bounds the work an attacker can make a verifier do. Our tokens
// are about 400 bytes.
const maxTokenLen = 8 << 10

// KeySource supplies the public keys that verify access tokens. [*KeySet]
// (in the issuing process) and [*JWKSCache] (anywhere else) implement it.
type KeySource interface {
	// PublicKey returns the key with id kid. A source that can refresh
	// does so before giving up; [ErrUnknownKey] then means the issuer does
	// not publish kid. Any other error means the source cannot tell right
	// now (the issuer is unreachable, ctx ended).
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	// Keys supplies the verification keys. Required.
	Keys KeySource
	// Issuer is the required iss claim. Required.
	Issuer string
	// Audience must be among the aud claim's values. Required.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// [DefaultLeeway].
	Leeway time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	keys     KeySource
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser
}

// NewVerifier returns a Verifier for cfg, or an error naming what is missing.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	switch {
	case cfg.Keys == nil:
		return nil, errors.New("auth: verifier: Keys is required")
	case cfg.Issuer == "":
		return nil, errors.New("auth: verifier: Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("auth: verifier: Audience is required")
	case cfg.Leeway < 0:
		return nil, errors.New("auth: verifier: Leeway must not be negative")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{
		keys:     cfg.Keys,
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		parser: jwt.NewParser(
			// The one algorithm we sign with. This is what stops "none"
			// and the HS256-with-the-public-key confusion: the algorithm
			// is never taken from the token.
			jwt.WithValidMethods([]string{signingAlg}),
			// Strict base64 rejects alternative encodings of the same
			// bytes, so a token has exactly one accepted spelling.
			jwt.WithStrictDecoding(),
			// Claims are checked in Verify, which needs to tell "expired"
			// from "expired and also wrong in another way" (invalid).
			jwt.WithoutClaimsValidation(),
		),
	}, nil
}

// Claims are the verified contents of an access token.
type Claims struct {
	// UserID is the sub claim.
	UserID string
	// SessionID is the sid claim: the refresh-token session the token was
	// issued for.
	SessionID string
	// TokenID is the jti claim.
	TokenID string
	// IssuedAt and ExpiresAt are the iat and exp claims, in UTC.
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Verify checks token and returns its claims. A token is accepted when it
// is a compact JWS with alg EdDSA, a kid that the key source knows and a
// valid signature by that key, no "crit" header, the configured iss, the
// configured audience among its aud values, non-empty sub, sid and jti, and
// iat, exp (and nbf, if present) such that now is within [iat, exp) and not
// before nbf, give or take the leeway.
//
// Errors are [*errs.Error]: [errs.TokenMissing] for an empty token;
// [errs.TokenExpired] for a token whose only fault is that exp has passed;
// [errs.TokenInvalid] for everything else. The one exception is a key
// source that cannot say whether it knows the token's kid (an unreachable
// issuer: [errs.Unavailable]; ctx ended: [errs.Canceled] or
// [errs.DeadlineExceeded]), because refusing the token would make clients
// throw away a token that may well be good.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, errs.New(errs.TokenMissing, msgMissing)
	}
	if len(token) > maxTokenLen {
		return Claims{}, invalid(fmt.Errorf("token is %d bytes, more than %d", len(token), maxTokenLen))
	}
	var c tokenClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		if se, ok := errors.AsType[*keySourceError](err); ok {
			if errors.Is(se.err, context.Canceled) || errors.Is(se.err, context.DeadlineExceeded) {
				return Claims{}, errs.From(se.err)
			}
			return Claims{}, errs.Wrap(se.err, errs.Unavailable, "access token cannot be verified right now")
		}
		return Claims{}, invalid(err)
	}

	// The signature is good: the claims are the issuer's. Check them all
	// before expiry, so that a token expired AND wrong is invalid.
	switch {
	case c.Issuer != v.issuer:
		return Claims{}, invalid(fmt.Errorf("issuer %q, want %q", c.Issuer, v.issuer))
	case !slices.Contains(c.Audience, v.audience):
		return Claims{}, invalid(fmt.Errorf("audience %q does not include %q", []string(c.Audience), v.audience))
	case c.Subject == "":
		return Claims{}, invalid(errors.New("no sub claim"))
	case c.SessionID == "":
		return Claims{}, invalid(errors.New("no sid claim"))
	case c.ID == "":
		return Claims{}, invalid(errors.New("no jti claim"))
	case c.ExpiresAt == nil:
		return Claims{}, invalid(errors.New("no exp claim"))
	case c.IssuedAt == nil:
		return Claims{}, invalid(errors.New("no iat claim"))
	case !c.ExpiresAt.After(c.IssuedAt.Time):
		return Claims{}, invalid(errors.New("exp is not after iat"))
	}
	now := v.now()
	if c.IssuedAt.After(now.Add(v.leeway)) {
		return Claims{}, invalid(fmt.Errorf("issued in the future (iat %s)", c.IssuedAt.UTC().Format(time.RFC3339)))
	}
	if c.NotBefore != nil && c.NotBefore.After(now.Add(v.leeway)) {
		return Claims{}, invalid(fmt.Errorf("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339)))
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return Claims{}, errs.Wrap(fmt.Errorf("expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339)), errs.TokenExpired, msgExpired)
	}
	return Claims{
		UserID:    c.Subject,
		SessionID: c.SessionID,
		TokenID:   c.ID,
		IssuedAt:  c.IssuedAt.UTC(),
		ExpiresAt: c.ExpiresAt.UTC(),
	}, nil
}

// keySourceError marks a key source's failure to answer, as opposed to its
// answer that it does not know the key.
type keySourceError struct{ err error }

func (e *keySourceError) Error() string { return "key source: " + e.err.Error() }
func (e *keySourceError) Unwrap() error { return e.err }

// keyFor is the jwt Keyfunc: it runs after the algorithm check and picks the
// key by the header's kid. Keys embedded in the token (jwk, jku, x5u, x5c)
// are ignored: a token cannot vouch for itself.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: extensions listed in crit must be understood, and
	// we understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New(`"crit" header present`)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errors.New("no kid header")
	}
	k, err := v.keys.PublicKey(ctx, kid)
	if errors.Is(err, ErrUnknownKey) {
		return nil, fmt.Errorf("kid %q: %w", kid, err)
	}
	if err != nil {
		return nil, &keySourceError{err}
	}
	return k, nil
}

func invalid(cause error) *errs.Error {
	return errs.Wrap(cause, errs.TokenInvalid, msgInvalid)
}

// BearerToken extracts the token from an Authorization header value
// (RFC 6750 §2.1; the scheme is case-insensitive). An empty value is
// [errs.TokenMissing]; anything but "Bearer <token>" is [errs.TokenInvalid].
func BearerToken(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", errs.New(errs.TokenMissing, msgMissing)
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", invalid(errors.New("authorization scheme is not Bearer"))
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", invalid(errors.New("malformed bearer credentials"))
	}
	return token, nil
}
