package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryConfig configures a Memory limiter.
type MemoryConfig struct {
	// MaxKeys caps how many keys are tracked at once. Default 100 000 (a few MB). When the cap
	// is reached, keys whose state has fully recovered are dropped first; if none has, the key
	// nearest to recovery among a small random sample is dropped, which forgets (resets) that
	// key's limit. Size the cap so that only an attack spraying keys reaches it.
	MaxKeys int
	// SweepInterval is how often each shard drops the keys whose state has fully recovered
	// (they are indistinguishable from unseen keys). Default 1 minute.
	SweepInterval time.Duration
	// Now is the clock. Default time.Now; tests inject a fake one.
	Now func() time.Time
}

const (
	defaultMaxKeys       = 100_000
	defaultSweepInterval = time.Minute
	// memoryShards spreads keys over independently locked maps so that concurrent callers
	// rarely wait for each other.
	memoryShards = 32
	// evictionSample is how many entries are looked at to pick one to evict when a shard is
	// full and nothing in it is stale: approximate, like Redis's LRU, and O(1).
	evictionSample = 8
)

// Memory is an in-process GCRA limiter. Its state is lost on restart and is private to the
// process. It is safe for concurrent use and needs no background goroutine: stale keys are
// swept while it is used.
type Memory struct {
	now    func() time.Time
	sweep  time.Duration
	seed   maphash.Seed
	shards []memoryShard
}

type memoryShard struct {
	mu        sync.Mutex
	tat       map[string]time.Time // theoretical arrival time per key
	max       int
	lastSweep time.Time
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns a Memory limiter.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = defaultMaxKeys
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = defaultSweepInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.MaxKeys < 0:
		return nil, errors.New("ratelimit: MaxKeys must not be negative")
	case cfg.SweepInterval < 0:
		return nil, errors.New("ratelimit: SweepInterval must not be negative")
	}
	n := min(memoryShards, cfg.MaxKeys)
	m := &Memory{now: cfg.Now, sweep: cfg.SweepInterval, seed: maphash.MakeSeed(), shards: make([]memoryShard, n)}
	start := cfg.Now()
	for i := range m.shards {
		// Per-shard caps add up to at most MaxKeys.
		m.shards[i] = memoryShard{tat: map[string]time.Time{}, max: cfg.MaxKeys / n, lastSweep: start}
	}
	for i := range cfg.MaxKeys % n {
		m.shards[i].max++
	}
	return m, nil
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	if err := checkRequest(key, l); err != nil {
		return Result{}, err
	}
	interval := l.interval()
	tolerance := interval * time.Duration(l.Burst)

	s := &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	now := m.now()
	if now.Sub(s.lastSweep) >= m.sweep {
		s.dropStale(now)
	}

	tat, known := s.tat[key]
	if !known || tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-tolerance)
	if now.Before(allowAt) {
		// Denied requests are not recorded: retrying does not push the next slot further.
		return Result{RetryAfter: allowAt.Sub(now)}, nil
	}
	if !known && len(s.tat) >= s.max {
		s.makeRoom(now)
	}
	s.tat[key] = newTAT
	return Result{Allowed: true, Remaining: int(now.Sub(allowAt) / interval)}, nil
}

// Len reports how many keys are tracked (for tests and diagnostics).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// dropStale deletes the keys whose theoretical arrival time has passed: their next request
// would be treated exactly like a first one. Callers hold s.mu.
func (s *memoryShard) dropStale(now time.Time) {
	for k, tat := range s.tat {
		if !tat.After(now) {
			delete(s.tat, k)
		}
	}
	s.lastSweep = now
}

// makeRoom frees one slot in a full shard. Callers hold s.mu.
func (s *memoryShard) makeRoom(now time.Time) {
	// A sweep is O(keys); under a key-spraying attack, where nothing is stale, repeating it on
	// every insert would be quadratic. Entries sampled from the map (whose iteration starts at
	// a random place) are checked first and one of them evicted when none is stale.
	var (
		victim  string
		earlier time.Time
		seen    int
	)
	for k, tat := range s.tat {
		if !tat.After(now) {
			delete(s.tat, k)
			return
		}
		if seen == 0 || tat.Before(earlier) {
			victim, earlier = k, tat
		}
		seen++
		if seen == evictionSample {
			break
		}
	}
	if seen > 0 {
		delete(s.tat, victim)
	}
}
