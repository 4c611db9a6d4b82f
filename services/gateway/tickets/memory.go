package tickets

import (
	"context"
	"sync"
	"time"
)

// MemoryConfig configures a [Memory] store.
type MemoryConfig struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is a Store in process memory, for a single gateway instance. Expired tickets are
// dropped lazily: by Take, and by a sweep that Put runs whenever the map has doubled since the
// last one, so memory stays proportional to the tickets live within one TTL.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	tickets   map[string]memoryEntry
	nextSweep int
}

type memoryEntry struct {
	t       Ticket
	expires time.Time
}

var _ Store = (*Memory)(nil)

// minSweep is the map size below which Put never sweeps.
const minSweep = 64

// NewMemory returns an empty store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Memory{now: cfg.Now, tickets: map[string]memoryEntry{}, nextSweep: minSweep}
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, id string, t Ticket, ttl time.Duration) error {
	if err := checkPut(id, ttl); err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.tickets[id]; ok && now.Before(e.expires) {
		return ErrExists
	}
	if len(m.tickets) >= m.nextSweep {
		for k, e := range m.tickets {
			if !now.Before(e.expires) {
				delete(m.tickets, k)
			}
		}
		m.nextSweep = max(2*len(m.tickets), minSweep)
	}
	m.tickets[id] = memoryEntry{t: t, expires: now.Add(ttl)}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, id string) (Ticket, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.tickets[id]
	if !ok {
		return Ticket{}, ErrNotFound
	}
	delete(m.tickets, id)
	if !now.Before(e.expires) {
		return Ticket{}, ErrNotFound
	}
	return e.t, nil
}
