package scenario

import (
	"encoding/json"
	"fmt"
	"time"
)

// Sizes: smoke proves the harness works (seconds; CI), small is `make bench` (a few minutes
// in all), large is sized to the project's targets (fd limit, 100k events/s, 3000 rps,
// 500 msg/s).
const (
	SizeSmoke = "smoke"
	SizeSmall = "small"
	SizeLarge = "large"
)

// Sizes lists the preset sizes.
var Sizes = []string{SizeSmoke, SizeSmall, SizeLarge}

// Duration is a time.Duration written as "1.5s" in the results.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d like time.Duration.String.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Params are every scenario's parameters.
type Params struct {
	SSECapacity SSECapacityParams `json:"sse_capacity"`
	Fanout      FanoutParams      `json:"fanout"`
	APIMix      APIMixParams      `json:"api_mix"`
	DM          DMParams          `json:"dm"`
}

// SSECapacityParams size sse-capacity.
type SSECapacityParams struct {
	// Connections is how many idle streams to hold open; it is lowered to what the tool's and
	// the server's open-file limits allow.
	Connections int `json:"connections"`
	// Users is how many accounts the connections are spread over (a user may hold many).
	Users int `json:"users"`
	// RampRate is how many connections are opened per second.
	RampRate float64 `json:"ramp_per_s"`
	// Hold is how long every connection is held open, idle, before the final figures.
	Hold Duration `json:"hold"`
}

// FanoutParams size fanout.
type FanoutParams struct {
	// Authors post; each of the Followers follows every author and holds one stream, so each
	// post is PostRate × Followers events.
	Authors   int      `json:"authors"`
	Followers int      `json:"followers"`
	PostRate  float64  `json:"posts_per_s"`
	Duration  Duration `json:"duration"`
	// Drain is how long to wait for the last events once no more arrive; MaxDrain bounds
	// the whole wait after the load (a saturated server may have a long backlog).
	Drain    Duration `json:"drain"`
	MaxDrain Duration `json:"max_drain"`
}

// APIMixParams size api-mix.
type APIMixParams struct {
	Users          int       `json:"users"`
	FollowsPerUser int       `json:"follows_per_user"`
	PostsPerUser   int       `json:"posts_per_user"`
	Rates          []float64 `json:"rates_per_s"`
	Step           Duration  `json:"step"`
	PageSize       int       `json:"page_size"`
}

// DMParams size dm.
type DMParams struct {
	Pairs    int      `json:"pairs"`
	Rate     float64  `json:"messages_per_s"`
	Duration Duration `json:"duration"`
	Drain    Duration `json:"drain"`
	MaxDrain Duration `json:"max_drain"`
}

// Preset returns the parameters of a size.
func Preset(size string) (Params, error) {
	s := time.Second
	switch size {
	case SizeSmoke:
		return Params{
			SSECapacity: SSECapacityParams{Connections: 40, Users: 4, RampRate: 200, Hold: Duration(s / 2)},
			Fanout:      FanoutParams{Authors: 2, Followers: 10, PostRate: 10, Duration: Duration(s), Drain: Duration(10 * s), MaxDrain: Duration(30 * s)},
			APIMix:      APIMixParams{Users: 10, FollowsPerUser: 3, PostsPerUser: 2, Rates: []float64{50}, Step: Duration(s), PageSize: 20},
			DM:          DMParams{Pairs: 3, Rate: 10, Duration: Duration(s), Drain: Duration(10 * s), MaxDrain: Duration(30 * s)},
		}, nil
	case SizeSmall:
		return Params{
			SSECapacity: SSECapacityParams{Connections: 2000, Users: 200, RampRate: 500, Hold: Duration(5 * s)},
			Fanout:      FanoutParams{Authors: 5, Followers: 200, PostRate: 20, Duration: Duration(15 * s), Drain: Duration(15 * s), MaxDrain: Duration(60 * s)},
			APIMix:      APIMixParams{Users: 200, FollowsPerUser: 20, PostsPerUser: 5, Rates: []float64{100, 200, 400, 800, 1600, 3200}, Step: Duration(5 * s), PageSize: 20},
			DM:          DMParams{Pairs: 50, Rate: 100, Duration: Duration(10 * s), Drain: Duration(15 * s), MaxDrain: Duration(60 * s)},
		}, nil
	case SizeLarge:
		return Params{
			SSECapacity: SSECapacityParams{Connections: 100000, Users: 2000, RampRate: 500, Hold: Duration(10 * s)},
			Fanout:      FanoutParams{Authors: 10, Followers: 2000, PostRate: 50, Duration: Duration(30 * s), Drain: Duration(30 * s), MaxDrain: Duration(120 * s)},
			APIMix:      APIMixParams{Users: 1000, FollowsPerUser: 50, PostsPerUser: 10, Rates: []float64{250, 500, 1000, 2000, 3000, 4000, 6000}, Step: Duration(10 * s), PageSize: 20},
			DM:          DMParams{Pairs: 250, Rate: 500, Duration: Duration(30 * s), Drain: Duration(30 * s), MaxDrain: Duration(120 * s)},
		}, nil
	}
	return Params{}, fmt.Errorf("unknown size %q (known: smoke, small, large)", size)
}
