package presence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts the Redis key of a user's presence: user_presence:<user_id>.
const KeyPrefix = "user_presence:"

// RedisConfig configures a Redis store.
type RedisConfig struct {
	// Client is the Redis connection (a *redis.Client, or any UniversalClient: every command
	// touches one key, so a cluster works too). The caller keeps ownership and closes it.
	// Required.
	Client redis.UniversalClient
	// Prefix is put in front of every key, so that several deployments (or test runs) can
	// share a Redis: the key of user u is Prefix + "user_presence:" + u. Default "" (the
	// platform's key names, literally).
	Prefix string
}

// Redis is the Store of the distributed mode, shared by every gateway and every
// notification-service instance that use the same Redis and Prefix.
//
// Layout: one key per user, `user_presence:<user_id>`, a sorted set whose members are the
// user's connections, `<instance_id>|<connection_id>`, scored by their expiry in Unix
// milliseconds (Redis 7.0 has no per-field TTL, so the score is the TTL). The key's own TTL is
// that of its longest-lived connection: the key exists while the user is online and vanishes
// with the last connection, also when nobody unregisters it (a crashed gateway). Keeping a
// user's presence and routes in one key makes every change one atomic single-key script (no
// cross-slot keys on a cluster) and a routing lookup one read per user.
//
// Register, Refresh and Unregister are Lua scripts that drop the user's expired connections,
// apply the change and reset the key's TTL atomically, so the first/last transitions they
// report are exact under concurrency. Routes, Online and Live read only connections whose
// expiry is in the future, so an expired connection is invisible even before it is dropped.
//
// Expiries are written and compared with the clock of the process calling the store, while
// Redis expires the key by its own clock from a relative TTL: hosts must keep their clocks
// in step (NTP) to well within the TTL. A skew of s between a gateway and a reader shifts the
// visible end of that gateway's connections by s.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

var (
	_ Store    = (*Redis)(nil)
	_ Liveness = (*Redis)(nil)
)

// NewRedis returns a Redis store. It does not contact Redis.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil {
		return nil, errors.New("presence: RedisConfig.Client is required")
	}
	return &Redis{rdb: cfg.Client, prefix: cfg.Prefix, now: time.Now}, nil
}

// registerScript adds or renews one connection. It answers 1 when the user had no live
// connection before (the offline → online transition).
//
//	KEYS[1] the user's key; ARGV[1] now, ARGV[2] the connection's expiry (Unix ms); ARGV[3] the member
var registerScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(top[2]) - tonumber(ARGV[1])))
if before == 0 then return 1 end
return 0
`)

// unregisterScript removes one connection. It answers 1 when that connection was live and was
// the user's last one (the online → offline transition); Redis deletes the emptied key.
//
//	KEYS[1] the user's key; ARGV[1] now (Unix ms); ARGV[2] the member
var unregisterScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then return 1 end
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(top[2]) - tonumber(ARGV[1])))
return 0
`)

func (r *Redis) key(userID string) string { return r.prefix + KeyPrefix + userID }

func member(c Connection) string { return c.InstanceID + "|" + c.ConnectionID }

func unixMilli(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// liveRange selects the members whose expiry is after now.
func liveRange(now time.Time) *redis.ZRangeBy {
	return &redis.ZRangeBy{Min: "(" + unixMilli(now), Max: "+inf"}
}

// Register implements Store.
func (r *Redis) Register(ctx context.Context, c Connection, ttl time.Duration) (bool, error) {
	if err := errors.Join(c.Validate(), checkTTL(ttl)); err != nil {
		return false, err
	}
	now := r.now()
	n, err := registerScript.Run(ctx, r.rdb, []string{r.key(c.UserID)},
		unixMilli(now), unixMilli(now.Add(ttl)), member(c)).Int()
	if err != nil {
		return false, fmt.Errorf("presence: register connection %s of user %s: %w", c.ConnectionID, c.UserID, err)
	}
	return n == 1, nil
}

// Refresh implements Store.
func (r *Redis) Refresh(ctx context.Context, c Connection, ttl time.Duration) error {
	_, err := r.Register(ctx, c, ttl)
	return err
}

// Unregister implements Store.
func (r *Redis) Unregister(ctx context.Context, c Connection) (bool, error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	n, err := unregisterScript.Run(ctx, r.rdb, []string{r.key(c.UserID)}, unixMilli(r.now()), member(c)).Int()
	if err != nil {
		return false, fmt.Errorf("presence: unregister connection %s of user %s: %w", c.ConnectionID, c.UserID, err)
	}
	return n == 1, nil
}

// Routes implements Store: one pipelined ZRANGEBYSCORE per distinct user, in one round trip.
func (r *Redis) Routes(ctx context.Context, userIDs []string) (map[string][]string, error) {
	out := make(map[string][]string)
	if len(userIDs) == 0 {
		return out, nil
	}
	live := liveRange(r.now())
	cmds := make(map[string]*redis.StringSliceCmd, len(userIDs))
	pipe := r.rdb.Pipeline()
	for _, id := range userIDs {
		if _, dup := cmds[id]; !dup {
			cmds[id] = pipe.ZRangeByScore(ctx, r.key(id), live)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("presence: routes of %d users: %w", len(cmds), err)
	}
	for id, cmd := range cmds {
		var instances []string
		for _, m := range cmd.Val() {
			instance, _, _ := strings.Cut(m, "|")
			if !slices.Contains(instances, instance) {
				instances = append(instances, instance)
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
func (r *Redis) Online(ctx context.Context, userID string) (bool, error) {
	live := liveRange(r.now())
	n, err := r.rdb.ZCount(ctx, r.key(userID), live.Min, live.Max).Result()
	if err != nil {
		return false, fmt.Errorf("presence: online %s: %w", userID, err)
	}
	return n > 0, nil
}

// Live implements Liveness: one pipelined ZSCORE per connection, in one round trip.
func (r *Redis) Live(ctx context.Context, conns []Connection) ([]bool, error) {
	out := make([]bool, len(conns))
	if len(conns) == 0 {
		return out, nil
	}
	now := r.now().UnixMilli()
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.FloatCmd, len(conns))
	for i, c := range conns {
		cmds[i] = pipe.ZScore(ctx, r.key(c.UserID), member(c))
	}
	// Exec reports the first failed command, and a missing member "fails" with redis.Nil: the
	// commands are judged one by one instead.
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		score, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("presence: live connections: %w", err)
		default:
			out[i] = int64(score) > now
		}
	}
	return out, nil
}
