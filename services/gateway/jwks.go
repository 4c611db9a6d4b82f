package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

// jwks serves the public keys that verify access tokens (a JWK Set, RFC 7517), as user-service
// publishes them. The answer is cacheable for JWKSMaxAge and carries an ETag, so verifiers can
// revalidate cheaply; the gateway itself reuses the set for JWKSCacheTTL.
func (s *Service) jwks(w http.ResponseWriter, r *http.Request) error {
	set, err := s.keys.get(r.Context())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(s.cfg.JWKSMaxAge/time.Second), 10))
	h.Set("ETag", set.etag)
	if etagMatches(r.Header.Get("If-None-Match"), set.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(set.doc)
	return nil
}

// etagMatches implements the weak comparison of If-None-Match (RFC 9110 section 13.1.2).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for c := range strings.SplitSeq(header, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}

type keySet struct {
	doc     []byte
	etag    string
	fetched time.Time
}

// keySetCache holds the last key set fetched from user-service. One request at a time
// refreshes it (the others wait for that fetch instead of piling onto user-service), and a
// failed refresh serves the previous set: the keys in it stay valid for verifying tokens, and
// an outage of user-service should not make the gateway's own verifiers blind.
type keySetCache struct {
	users userv1.UserServiceClient
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu  sync.Mutex
	set *keySet
}

func (c *keySetCache) get(ctx context.Context) (*keySet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.set != nil && now.Sub(c.set.fetched) < c.ttl {
		return c.set, nil
	}
	set, err := c.fetch(ctx, now)
	if err != nil {
		if c.set != nil && ctx.Err() == nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "serving the previous JWK set: user-service failed", slog.String("error", err.Error()))
			return c.set, nil
		}
		return nil, err
	}
	c.set = set
	return set, nil
}

func (c *keySetCache) fetch(ctx context.Context, now time.Time) (*keySet, error) {
	resp, err := c.users.GetSigningKeys(ctx, &userv1.GetSigningKeysRequest{})
	if err != nil {
		return nil, err
	}
	doc := resp.GetJwks()
	var probe struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &probe); err != nil || probe.Keys == nil {
		if err == nil {
			err = errors.New(`no "keys" member`)
		}
		return nil, errs.Wrap(err, errs.Internal, "internal error")
	}
	sum := sha256.Sum256(doc)
	return &keySet{doc: doc, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`, fetched: now}, nil
}
