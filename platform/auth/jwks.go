package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
)

// jwk is the JSON form of one public key in a JWK Set (RFC 7517 §4, with
// the OKP members of RFC 8037 §2).
type jwk struct {
	Kty    string   `json:"kty"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	D      string   `json:"d,omitempty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use,omitempty"`
	Alg    string   `json:"alg,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
}

func encodeJWKS(kids []string, public map[string]ed25519.PublicKey) []byte {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(kids))}
	for _, kid := range kids {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(public[kid]),
			Kid: kid,
			Use: "sig",
			Alg: signingAlg,
		})
	}
	doc, err := json.Marshal(set)
	if err != nil {
		// Marshalling strings cannot fail; a failure here is a bug.
		panic("auth: encode JWKS: " + err.Error())
	}
	return doc
}

// ParseJWKS parses a JWK Set document and returns its Ed25519 verification
// keys by key id.
//
// Following RFC 7517 §5, keys this package cannot use are skipped: another
// kty or crv, an alg other than EdDSA, a use other than "sig", key_ops
// without "verify". Everything else is strict, and any of these rejects the
// whole document: it is not a JSON object with a "keys" array of objects, a
// member has the wrong JSON type, an Ed25519 key has no kid or an x that is
// not 32 base64url bytes, it carries a private part ("d": whoever publishes
// it has leaked the key), two different keys share a kid, or no Ed25519 key
// is left (a set that verifies nothing is a broken publisher, not a state to
// switch to).
func ParseJWKS(doc []byte) (map[string]ed25519.PublicKey, error) {
	var set struct {
		Keys *[]jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("auth: parse JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`auth: parse JWKS: no "keys" array`)
	}
	out := make(map[string]ed25519.PublicKey, len(*set.Keys))
	for i, k := range *set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" ||
			(k.Alg != "" && k.Alg != signingAlg) ||
			(k.Use != "" && k.Use != "sig") ||
			(k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify")) {
			continue
		}
		if k.D != "" {
			return nil, fmt.Errorf("auth: parse JWKS: key %d carries its private part", i)
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("auth: parse JWKS: key %d has no kid", i)
		}
		x, err := base64.RawURLEncoding.Strict().DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: parse JWKS: key %q: x is not a base64url Ed25519 public key", k.Kid)
		}
		pub := ed25519.PublicKey(x)
		if prev, dup := out[k.Kid]; dup && !prev.Equal(pub) {
			return nil, fmt.Errorf("auth: parse JWKS: two different keys with kid %q", k.Kid)
		}
		out[k.Kid] = pub
	}
	if len(out) == 0 {
		return nil, errors.New("auth: parse JWKS: no Ed25519 signing key")
	}
	return out, nil
}

// JWKSCacheConfig configures a [JWKSCache].
type JWKSCacheConfig struct {
	// MinRefreshInterval is the least time between two fetches triggered by
	// lookups, so that tokens naming made-up key ids cannot turn into a flood
	// of requests to the issuer. Default 10s.
	MinRefreshInterval time.Duration
	// MaxAge is how long fetched keys are used before a lookup refreshes
	// them, which is how a key removed from the set (after a rotation, or
	// because it leaked) stops verifying. Default 10m.
	MaxAge time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// JWKSCache is a [KeySource] over a JWK Set document fetched from the issuer
// (typically GET /.well-known/jwks.json). It is safe for concurrent use.
//
// It fetches on the first lookup, again when a token names a key id it does
// not know (a new key after a rotation) and when its keys are older than
// MaxAge; lookup-triggered fetches happen at most once per
// MinRefreshInterval, and concurrent lookups share one fetch. A failed fetch
// leaves the last good keys in service.
type JWKSCache struct {
	fetch       func(context.Context) ([]byte, error)
	minInterval time.Duration
	maxAge      time.Duration
	now         func() time.Time

	state atomic.Pointer[jwksState]
	// refreshing is a one-slot semaphore held by the fetch in flight; a
	// channel rather than a mutex so that waiting for it honours ctx.
	refreshing chan struct{}
}

// jwksState is an immutable snapshot of the cache, replaced on every fetch.
type jwksState struct {
	keys      map[string]ed25519.PublicKey
	loadedAt  time.Time // of the keys
	attemptAt time.Time // of the last fetch, successful or not
	err       error     // of the last fetch
	gen       uint64    // counts fetches
}

// NewJWKSCache returns a cache whose fetch returns the JWK Set document. fetch
// is called with the context of the lookup that needs the keys; it should
// bound its own duration if that context may not.
func NewJWKSCache(fetch func(ctx context.Context) ([]byte, error), cfg JWKSCacheConfig) (*JWKSCache, error) {
	if fetch == nil {
		return nil, errors.New("auth: JWKS cache: fetch is required")
	}
	if cfg.MinRefreshInterval < 0 || cfg.MaxAge < 0 {
		return nil, errors.New("auth: JWKS cache: intervals must not be negative")
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = 10 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &JWKSCache{
		fetch:       fetch,
		minInterval: cfg.MinRefreshInterval,
		maxAge:      cfg.MaxAge,
		now:         cfg.Now,
		refreshing:  make(chan struct{}, 1),
	}
	c.state.Store(&jwksState{})
	return c, nil
}

// PublicKey returns the key with id kid, fetching the document if kid is not
// known yet (see [JWKSCache]). It returns [ErrUnknownKey] when the issuer
// does not publish kid, the fetch error when kid is unknown and the last
// fetch failed (the key may exist; we cannot tell), and ctx's error if ctx
// ends while waiting for a fetch.
func (c *JWKSCache) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	st := c.state.Load()
	if k, ok := st.keys[kid]; ok {
		if c.now().Sub(st.loadedAt) < c.maxAge {
			return k, nil
		}
		// Stale: refresh unless a refresh is already running, in which case
		// the key we have is good enough for this request.
		st, _ = c.refresh(ctx, st, false, false)
		if k, ok := st.keys[kid]; ok {
			return k, nil
		}
		return nil, ErrUnknownKey
	}
	st, err := c.refresh(ctx, st, true, false)
	if err != nil {
		return nil, err
	}
	if k, ok := st.keys[kid]; ok {
		return k, nil
	}
	if st.err != nil {
		return nil, st.err
	}
	return nil, ErrUnknownKey
}

// Refresh fetches the document now, regardless of MinRefreshInterval (but
// still sharing a fetch already in flight), and returns the fetch error.
// Calling it at start-up surfaces an unreachable issuer before the first
// request does.
func (c *JWKSCache) Refresh(ctx context.Context) error {
	st, err := c.refresh(ctx, c.state.Load(), true, true)
	if err != nil {
		return err
	}
	return st.err
}

// refresh fetches the document unless a fetch has completed since seen was
// loaded (so concurrent callers share one fetch) or, unless force is set, the
// last one started less than minInterval ago. With wait unset it gives up at
// once when a fetch is in flight. It returns the current snapshot; its error
// is only ctx's.
func (c *JWKSCache) refresh(ctx context.Context, seen *jwksState, wait, force bool) (*jwksState, error) {
	if wait {
		select {
		case c.refreshing <- struct{}{}:
		case <-ctx.Done():
			return seen, ctx.Err()
		}
	} else {
		select {
		case c.refreshing <- struct{}{}:
		default:
			return seen, nil
		}
	}
	defer func() { <-c.refreshing }()

	cur := c.state.Load()
	if cur.gen != seen.gen {
		return cur, nil
	}
	now := c.now()
	if !force && cur.gen > 0 && now.Sub(cur.attemptAt) < c.minInterval {
		return cur, nil
	}
	keys, err := c.fetchKeys(ctx)
	if err != nil && ctx.Err() != nil {
		// The caller gave up; that says nothing about the issuer, so it
		// neither counts as an attempt nor replaces the last error.
		return cur, ctx.Err()
	}
	next := &jwksState{keys: cur.keys, loadedAt: cur.loadedAt, attemptAt: now, err: err, gen: cur.gen + 1}
	if err == nil {
		next.keys, next.loadedAt = keys, now
	}
	c.state.Store(next)
	return next, nil
}

func (c *JWKSCache) fetchKeys(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	doc, err := c.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: fetch JWKS: %w", err)
	}
	return ParseJWKS(doc)
}

// maxJWKSSize bounds a fetched JWK Set document; ours is a few hundred bytes
// per key.
const maxJWKSSize = 1 << 20

// HTTPFetcher returns a fetch function for [NewJWKSCache] that GETs url
// with client (http.DefaultClient if nil). Anything but a 200 response with
// a body of at most 1 MiB is an error. The request honours the lookup's
// context; give client a Timeout if lookups may come without a deadline.
func HTTPFetcher(client *http.Client, url string) func(ctx context.Context) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if len(body) > maxJWKSSize {
			return nil, fmt.Errorf("GET %s: document larger than %d bytes", url, maxJWKSSize)
		}
		return body, nil
	}
}
