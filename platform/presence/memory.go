package presence

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// MemoryConfig configures a Memory store.
type MemoryConfig struct {
	// Now is the clock. Default time.Now; tests inject a fake one.
	Now func() time.Time
	// SweepInterval is how often expired connections are dropped from memory. They are
	// invisible from the moment they expire; sweeping only frees the memory. A user's own
	// expired connections are also dropped whenever that user's entry changes. Default 1
	// minute.
	SweepInterval time.Duration
}

// Memory is the in-process Store of the embedded mode: what the Redis adapter keeps in Redis,
// kept in a map, with the same semantics. Its state is private to the process and lost on
// restart (as presence should be: every connection died with the process). It is safe for
// concurrent use and needs no background goroutine: expired entries are swept while it is
// written to.
type Memory struct {
	now   func() time.Time
	sweep time.Duration

	mu        sync.RWMutex
	users     map[string]map[route]time.Time // user id → connection → expiry
	lastSweep time.Time
}

// route is one connection of a user at a gateway instance.
type route struct{ instance, connection string }

var (
	_ Store    = (*Memory)(nil)
	_ Liveness = (*Memory)(nil)
)

// NewMemory returns an empty Memory store.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.SweepInterval < 0 {
		return nil, errors.New("presence: MemoryConfig.SweepInterval must not be negative")
	}
	return &Memory{now: cfg.Now, sweep: cfg.SweepInterval, users: map[string]map[route]time.Time{}, lastSweep: cfg.Now()}, nil
}

// Register implements Store.
func (m *Memory) Register(_ context.Context, c Connection, ttl time.Duration) (bool, error) {
	if err := errors.Join(c.Validate(), checkTTL(ttl)); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	conns := m.prune(c.UserID, now)
	first := len(conns) == 0
	if conns == nil {
		conns = map[route]time.Time{}
		m.users[c.UserID] = conns
	}
	conns[route{c.InstanceID, c.ConnectionID}] = now.Add(ttl)
	return first, nil
}

// Refresh implements Store.
func (m *Memory) Refresh(ctx context.Context, c Connection, ttl time.Duration) error {
	_, err := m.Register(ctx, c, ttl)
	return err
}

// Unregister implements Store.
func (m *Memory) Unregister(_ context.Context, c Connection) (bool, error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	conns := m.prune(c.UserID, m.now())
	r := route{c.InstanceID, c.ConnectionID}
	if _, ok := conns[r]; !ok {
		return false, nil
	}
	delete(conns, r)
	if len(conns) > 0 {
		return false, nil
	}
	delete(m.users, c.UserID)
	return true, nil
}

// Routes implements Store.
func (m *Memory) Routes(_ context.Context, userIDs []string) (map[string][]string, error) {
	out := make(map[string][]string)
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	for _, id := range userIDs {
		if _, done := out[id]; done {
			continue
		}
		var instances []string
		for r, exp := range m.users[id] {
			if exp.After(now) && !slices.Contains(instances, r.instance) {
				instances = append(instances, r.instance)
			}
		}
		if len(instances) > 0 {
			slices.Sort(instances)
			out[id] = instances
		}
	}
	return out, nil
}

// Online implements Store.
func (m *Memory) Online(_ context.Context, userID string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	for _, exp := range m.users[userID] {
		if exp.After(now) {
			return true, nil
		}
	}
	return false, nil
}

// Live implements Liveness.
func (m *Memory) Live(_ context.Context, conns []Connection) ([]bool, error) {
	out := make([]bool, len(conns))
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.now()
	for i, c := range conns {
		exp, ok := m.users[c.UserID][route{c.InstanceID, c.ConnectionID}]
		out[i] = ok && exp.After(now)
	}
	return out, nil
}

// Len reports how many users have entries in memory, live or expired but not yet swept (for
// tests and diagnostics).
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.users)
}

// prune drops userID's expired connections and returns the live ones (nil if none), and
// sweeps every user when SweepInterval has passed. m.mu must be held for writing.
func (m *Memory) prune(userID string, now time.Time) map[route]time.Time {
	if now.Sub(m.lastSweep) >= m.sweep {
		for id, conns := range m.users {
			dropExpired(m.users, id, conns, now)
		}
		m.lastSweep = now
	}
	conns, ok := m.users[userID]
	if !ok {
		return nil
	}
	dropExpired(m.users, userID, conns, now)
	return m.users[userID]
}

func dropExpired(users map[string]map[route]time.Time, id string, conns map[route]time.Time, now time.Time) {
	for r, exp := range conns {
		if !exp.After(now) {
			delete(conns, r)
		}
	}
	if len(conns) == 0 {
		delete(users, id)
	}
}
