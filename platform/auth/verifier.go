package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// DefaultRememberedTokens is how many verified tokens a [Verifier] remembers
// unless configured otherwise: about 5 MB at our tokens' size.
const DefaultRememberedTokens = 10000

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
	// RememberedTokens is how many accepted tokens the verifier remembers,
	// so that a client presenting its token again (every request until the
	// token expires) costs a map lookup instead of a signature check; zero
	// means [DefaultRememberedTokens], negative none.
	RememberedTokens int
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	keys     KeySource
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	parser   *jwt.Parser

	// accepted remembers tokens that passed every check, by their exact
	// text. Everything Verify checks but the time is a function of that
	// text and of the key it names, so a remembered token is accepted again
	// while its key source still gives the same key for its kid and the
	// time checks still pass; otherwise it is forgotten and checked in full.
	mu       sync.RWMutex
	accepted map[string]acceptedToken
	capacity int
}

// acceptedToken is what the verifier remembers of an accepted token.
type acceptedToken struct {
	claims    Claims
	kid       string
	key       ed25519.PublicKey
	notBefore time.Time // zero: no nbf claim
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
	if cfg.RememberedTokens == 0 {
		cfg.RememberedTokens = DefaultRememberedTokens
	}
	return &Verifier{
		keys:     cfg.Keys,
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		accepted: map[string]acceptedToken{},
		capacity: max(cfg.RememberedTokens, 0),
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
//
// A token accepted before is accepted again without checking its signature
// (see RememberedTokens) as long as the key source gives the same key for its
// kid; the answer is the one the full check would give.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, errs.New(errs.TokenMissing, msgMissing)
	}
	if len(token) > maxTokenLen {
		return Claims{}, invalid(fmt.Errorf("token is %d bytes, more than %d", len(token), maxTokenLen))
	}
	if c, ok := v.remembered(ctx, token); ok {
		return c, nil
	}
	var (
		c   tokenClaims
		key ed25519.PublicKey
		kid string
	)
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(ctx, t)
		if err == nil {
			key, kid = k, t.Header["kid"].(string) // keyFor found a key: kid is a string
		}
		return k, err
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
	claims := Claims{
		UserID:    c.Subject,
		SessionID: c.SessionID,
		TokenID:   c.ID,
		IssuedAt:  c.IssuedAt.UTC(),
		ExpiresAt: c.ExpiresAt.UTC(),
	}
	a := acceptedToken{claims: claims, kid: kid, key: key}
	if c.NotBefore != nil {
		a.notBefore = c.NotBefore.Time
	}
	v.remember(token, a)
	return claims, nil
}

// remembered returns the claims of token if it was accepted before and
// still would be: its key source gives the same key for its kid, and it is
// within its validity period (iat, nbf, exp, give or take the leeway). A
// remembered token that fails either check is forgotten, and the caller
// checks it in full, which gives the answer (and the error) the first check
// would.
func (v *Verifier) remembered(ctx context.Context, token string) (Claims, bool) {
	v.mu.RLock()
	a, ok := v.accepted[token]
	v.mu.RUnlock()
	if !ok {
		return Claims{}, false
	}
	now := v.now()
	k, err := v.keys.PublicKey(ctx, a.kid)
	if err == nil && k.Equal(a.key) &&
		!a.claims.IssuedAt.After(now.Add(v.leeway)) &&
		!a.notBefore.After(now.Add(v.leeway)) &&
		now.Before(a.claims.ExpiresAt.Add(v.leeway)) {
		return a.claims, true
	}
	v.mu.Lock()
	delete(v.accepted, token)
	v.mu.Unlock()
	return Claims{}, false
}

// remember records an accepted token. When full, it first forgets an
// arbitrary remembered token (map order), which costs nothing to choose;
// tokens presented often are remembered again at their next request.
func (v *Verifier) remember(token string, a acceptedToken) {
	if v.capacity == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.accepted) >= v.capacity {
		for t := range v.accepted {
			delete(v.accepted, t)
			break
		}
	}
	v.accepted[token] = a
}

// keySourceError marks a key source's failure to answer, as opposed to its
// answer that it does not know the key.
type keySourceError struct{ err error }

func (e *keySourceError) Error() string { return "key source: " + e.err.Error() }
func (e *keySourceError) Unwrap() error { return e.err }

// keyFor is the jwt Keyfunc: it runs after the algorithm check and picks the
// key by the header's kid. Keys embedded in the token (jwk, jku, x5u, x5c)
// are ignored: a token cannot vouch for itself.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (ed25519.PublicKey, error) {
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
