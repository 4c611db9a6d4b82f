package app

import (
	"context"
	"errors"
	"log/slog"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// DefaultUsernameCacheSize is the default of UsernameCacheConfig.Size.
const DefaultUsernameCacheSize = 10_000

// UsernameCacheConfig tunes a UsernameCache. Zero fields take the defaults.
type UsernameCacheConfig struct {
	// Size is the most usernames remembered; the least recently used goes first. Default
	// DefaultUsernameCacheSize (an entry is an id and a username: about 150 bytes).
	Size int
	// MeterProvider makes the lookup counter; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// UsernameCache is a Users decorator that remembers the usernames it was answered, so the
// handler asks user-service only for actors it has not seen lately. A remembered answer is
// exact, never stale: user-service never changes a username (a profile update changes the
// display name and bio only) and never deletes an account. An id the wrapped Users did not
// know is not remembered: it is asked again next time, so a lookup that raced the account's
// creation cannot hide its username for good. Safe for concurrent use; two concurrent misses
// of one id may both ask.
type UsernameCache struct {
	next    Users
	names   *lru.Cache[string, string]
	lookups metric.Int64Counter
}

// NewUsernameCache wraps next. A failed metric instrument is logged, not fatal.
func NewUsernameCache(cfg UsernameCacheConfig, next Users, log *slog.Logger) (*UsernameCache, error) {
	if cfg.Size == 0 {
		cfg.Size = DefaultUsernameCacheSize
	}
	if cfg.Size < 0 {
		return nil, errors.New("notification username cache: Size must be positive")
	}
	if next == nil {
		return nil, errors.New("notification username cache: the wrapped Users is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names, err := lru.New[string, string](cfg.Size)
	if err != nil {
		return nil, err
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	lookups, err := cfg.MeterProvider.Meter(instrumentationName).Int64Counter("notification.usernames.lookups",
		metric.WithDescription("Actor ids looked up, by result: hit (remembered) or miss (asked of user-service)."),
		metric.WithUnit("{lookup}"))
	if err != nil {
		log.LogAttrs(context.Background(), slog.LevelWarn, "metric instrument not created", slog.String("error", err.Error()))
	}
	return &UsernameCache{next: next, names: names, lookups: lookups}, nil
}

var (
	lookupHit  = metricAttrs(attribute.String("result", "hit"))
	lookupMiss = metricAttrs(attribute.String("result", "miss"))
)

// Usernames answers the remembered ids itself and asks the wrapped Users, in one call, for the
// others (each once, however often it appears in ids). Its answer and errors are the wrapped
// Users's: on an error nothing is answered, and nothing new is remembered.
func (c *UsernameCache) Usernames(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	var missing []string
	for _, id := range ids {
		if _, done := out[id]; done {
			continue
		}
		if name, ok := c.names.Get(id); ok {
			out[id] = name
			continue
		}
		out[id] = "" // marks the id as asked; removed below unless it is found
		missing = append(missing, id)
	}
	hits := len(out) - len(missing)
	if hits > 0 {
		c.lookups.Add(ctx, int64(hits), lookupHit)
	}
	if len(missing) == 0 {
		return out, nil
	}
	c.lookups.Add(ctx, int64(len(missing)), lookupMiss)
	found, err := c.next.Usernames(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		name, ok := found[id]
		if !ok {
			delete(out, id)
			continue
		}
		c.names.Add(id, name)
		out[id] = name
	}
	return out, nil
}
