// Package presence is the presence and routing port: which users are online, and which gateway
// instances hold their connections. A user may hold several connections (tabs, devices) on
// several gateways; every entry is per connection and carries a TTL that the holding gateway
// renews by heartbeat, so the entries of a crashed gateway age out by themselves.
//
// Two adapters implement Store (and Liveness), and both pass the contract suite in
// presencetest:
//
//   - Redis, for the distributed mode: the key `user_presence:<user_id>` (the platform's
//     historical name) exists exactly while the user has a live connection. It is a sorted set
//     holding one member `<instance_id>|<connection_id>` per connection, scored by the
//     connection's expiry, and the key's own TTL is that of its longest-lived connection.
//   - Memory, for the embedded mode: the same semantics in process, with an injectable clock.
//
// A connection is live from Register until its TTL lapses without a Refresh, or until
// Unregister. Expired connections are invisible at once, whether or not they were cleaned up.
package presence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Connection identifies one live connection of a user at one gateway instance.
type Connection struct {
	UserID       string
	ConnectionID string
	InstanceID   string
}

// ErrInvalidConnection is wrapped by the error of every Store method given a Connection that
// Validate rejects.
var ErrInvalidConnection = errors.New("presence: invalid connection")

// Validate reports whether c is usable: every field set, and no "|" in InstanceID (the
// separator of the Redis routing entries).
func (c Connection) Validate() error {
	switch {
	case c.UserID == "" || c.ConnectionID == "" || c.InstanceID == "":
		return fmt.Errorf("%w: user, connection and instance ids are required (got %q, %q, %q)",
			ErrInvalidConnection, c.UserID, c.ConnectionID, c.InstanceID)
	case strings.Contains(c.InstanceID, "|"):
		return fmt.Errorf("%w: instance id %q contains '|'", ErrInvalidConnection, c.InstanceID)
	}
	return nil
}

// Store is the presence and routing port. Every adapter passes presencetest.Run.
type Store interface {
	// Register records a new connection, live for ttl unless renewed. first reports whether
	// the user had no other live connection (an offline → online transition); registering a
	// connection that is already live is no transition.
	Register(ctx context.Context, c Connection, ttl time.Duration) (first bool, err error)
	// Refresh renews a live connection's TTL (the heartbeat). Refreshing an expired or unknown
	// connection registers it again.
	Refresh(ctx context.Context, c Connection, ttl time.Duration) error
	// Unregister removes a connection. last reports whether it was live and the user has no
	// live connection left (an online → offline transition); concurrent Unregisters of a
	// user's last connections report it exactly once. Unregistering an unknown or expired
	// connection is no error and reports false.
	Unregister(ctx context.Context, c Connection) (last bool, err error)
	// Routes returns, for each of userIDs that has live connections, the distinct gateway
	// instances holding them, sorted. Users without live connections are absent. One round
	// trip for the whole list: fan-out calls it with many users.
	Routes(ctx context.Context, userIDs []string) (map[string][]string, error)
	// Online reports whether the user has at least one live connection.
	Online(ctx context.Context, userID string) (bool, error)
}

// Liveness tells whether particular connections are still live. Every Store of this package
// implements it; it is a separate interface so that Store stays as small as its callers need.
// presence-service uses it to close the recorded sessions of connections that ended without a
// disconnect (a crashed gateway).
type Liveness interface {
	// Live reports, in the order of conns, whether each connection is live: registered (with
	// the same user, connection and instance ids) and not expired. One round trip for the
	// whole list.
	Live(ctx context.Context, conns []Connection) ([]bool, error)
}

// checkTTL rejects TTLs below a millisecond, the Redis adapter's resolution.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("presence: ttl %s is below 1ms", ttl)
	}
	return nil
}
