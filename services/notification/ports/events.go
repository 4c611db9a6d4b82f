package ports

import (
	"errors"
	"fmt"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/events"
)

// Handler names, as they appear in logs, metrics and dead letters.
const (
	UsersHandler    = "notification.users"
	PostsHandler    = "notification.posts"
	MessagesHandler = "notification.messages"
)

// AddEventHandlers registers h on r for the topics "users" (as UsersHandler), "posts" (as
// PostsHandler) and "messages" (as MessagesHandler), each through its own subscriber of bus
// for consumer group group (so every notification-service replica shares the work, and
// each event is handled by one of them). The router owns and closes the subscribers.
func AddEventHandlers(r *events.Router, bus events.Bus, group string, h events.Handler) error {
	if r == nil || bus == nil || h == nil || group == "" {
		return errors.New("notification ports: router, bus, group and handler are required")
	}
	for _, reg := range []struct{ name, topic string }{
		{UsersHandler, eventsv1.TopicUsers},
		{PostsHandler, eventsv1.TopicPosts},
		{MessagesHandler, eventsv1.TopicMessages},
	} {
		sub, err := bus.Subscriber(group)
		if err != nil {
			return fmt.Errorf("notification ports: subscriber for %s: %w", reg.topic, err)
		}
		if err := r.AddHandler(reg.name, reg.topic, sub, h); err != nil {
			_ = sub.Close()
			return fmt.Errorf("notification ports: %w", err)
		}
	}
	return nil
}
