// Package eventsv1 is the contract of the domain events that services publish on the bus: the
// topics, the event type names, and the JSON payload of each type (schema version 1). Producers
// and consumers share these types instead of each declaring its own copy; a change here is a
// change of a public contract, so fields are only ever added.
//
// Every event travels in a platform/events Envelope whose aggregate id is the partition key:
// the user for user events, the author for post events, the conversation for message events.
package eventsv1

import "time"

// Topics.
const (
	// TopicUsers carries user.* events, keyed by the acting user's id.
	TopicUsers = "users"
	// TopicPosts carries post.* events, keyed by the post author's id.
	TopicPosts = "posts"
	// TopicPresence carries presence.* events, keyed by the user's id.
	TopicPresence = "presence"
	// TopicMessages carries message.* events, keyed by the conversation id.
	TopicMessages = "messages"
)

// Event types.
const (
	UserRegistered = "user.registered"
	UserFollowed   = "user.followed"
	UserUnfollowed = "user.unfollowed"

	PostCreated   = "post.created"
	PostDeleted   = "post.deleted"
	PostLiked     = "post.liked"
	PostCommented = "post.commented"

	// PresenceConnected and PresenceDisconnected report one SSE connection opening and
	// closing at a gateway instance. A crashed gateway sends no disconnect: its connections
	// end when their presence entries expire.
	MessageSent = "message.sent"

	PresenceConnected    = "presence.connected"
	PresenceDisconnected = "presence.disconnected"
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

// PostCreatedPayload is the payload of post.created; the aggregate id is the author's id.
type PostCreatedPayload struct {
	PostID   string    `json:"post_id"`
	AuthorID string    `json:"author_id"`
	Text     string    `json:"text"`
	At       time.Time `json:"created_at"`
}

// PostDeletedPayload is the payload of post.deleted; the aggregate id is the author's id.
type PostDeletedPayload struct {
	PostID   string `json:"post_id"`
	AuthorID string `json:"author_id"`
}

// PostLikedPayload is the payload of post.liked (only when a like was added, not when it
// already existed); the aggregate id is the post author's id.
type PostLikedPayload struct {
	PostID   string `json:"post_id"`
	AuthorID string `json:"author_id"` // the post's author, who is told
	LikerID  string `json:"liker_id"`
}

// PostCommentedPayload is the payload of post.commented; the aggregate id is the post
// author's id.
type PostCommentedPayload struct {
	PostID      string `json:"post_id"`
	AuthorID    string `json:"author_id"` // the post's author, who is told
	CommentID   string `json:"comment_id"`
	CommenterID string `json:"commenter_id"`
	Text        string `json:"text"`
}

// PresencePayload is the payload of presence.connected and presence.disconnected; the
// aggregate id is the user's id.
type PresencePayload struct {
	UserID       string    `json:"user_id"`
	ConnectionID string    `json:"connection_id"`
	InstanceID   string    `json:"instance_id"`
	At           time.Time `json:"at"`
}

// MessageSentPayload is the payload of message.sent; the aggregate id is the conversation id.
// The notification-service tells every participant but the sender, carrying the message.
type MessageSentPayload struct {
	MessageID      string    `json:"message_id"`
	ConversationID string    `json:"conversation_id"`
	SenderID       string    `json:"sender_id"`
	ParticipantIDs []string  `json:"participant_ids"`
	Text           string    `json:"text"`
	ClientMsgID    string    `json:"client_msg_id"`
	SentAt         time.Time `json:"sent_at"`
}
