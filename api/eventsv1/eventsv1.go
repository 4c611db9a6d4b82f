// Package eventsv1 is the contract of the domain events that services publish on the bus: the
// topics, the event type names, and the JSON payload of each type (schema version 1). Producers
// and consumers share these types instead of each declaring its own copy; a change here is a
// change of a public contract, so fields are only ever added.
//
// Every event travels in a platform/events Envelope whose aggregate id is the partition key:
// the user for user events, the author for post events, the conversation for message events.
package eventsv1

// Topics.
const (
	// TopicUsers carries user.* events, keyed by the acting user's id.
	TopicUsers = "users"
)

// Event types.
const (
	UserRegistered = "user.registered"
	UserFollowed   = "user.followed"
	UserUnfollowed = "user.unfollowed"
)

// UserRegisteredPayload is the payload of user.registered; the aggregate id is the user id.
type UserRegisteredPayload struct {
	UserID   string `json:"user_id"`
	Username string `json:"username"`
}

// UserFollowedPayload is the payload of user.followed; the aggregate id is the follower's id.
type UserFollowedPayload struct {
	FollowerID       string `json:"follower_id"`
	FollowerUsername string `json:"follower_username"`
	FolloweeID       string `json:"followee_id"`
}

// UserUnfollowedPayload is the payload of user.unfollowed; the aggregate id is the follower's id.
type UserUnfollowedPayload struct {
	FollowerID string `json:"follower_id"`
	FolloweeID string `json:"followee_id"`
}
