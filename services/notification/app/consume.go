package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/notification/domain"
)

// handleEvent turns one domain event into notifications:
//
//   - post.created: every follower of the author, walked batch by batch through Followers;
//   - post.liked, post.commented: the post's author, unless the actor is the author;
//   - user.followed: the followed user;
//   - message.sent: every participant of the conversation but the sender (at most 49);
//   - any other type: nothing (acked).
//
// The actor's username is looked up through Users (user.followed carries it already). Each
// batch of recipients (at most Config.FanoutBatch) is stored in one inbox transaction and then
// routed: the gateways holding the recipients' connections are found with one Routes call, and
// each gets one realtimev1.Batch through the Pusher. Offline recipients get no push.
//
// Redelivery: every batch is idempotent (a user's inbox holds at most one notification per
// event), so an event handled again — after a crash, or a retry of a fan-out that failed half
// way — stores nothing twice and burns no seq. The notifications it finds already stored are
// pushed again with their original seqs: if the first handling died between its commit and
// its push, this is what gets them to online users without waiting for the next notification;
// the gateway drops a seq it has already sent.
//
// Errors: a payload that does not fit its type, or lacks a field the notification needs, is
// events.Permanent (dead-lettered at once). A failed store, follower walk or username lookup is
// returned for the router to retry. A failed push is not an error (see push).
func (s *service) handleEvent(ctx context.Context, env events.Envelope) error {
	t, err := trigger(env)
	if err != nil {
		return events.Permanent(err)
	}
	if t.Audience == domain.AudienceNobody {
		return nil
	}
	if t.Actor.Username == "" {
		names, err := s.users.Usernames(ctx, []string{t.Actor.ID})
		if err != nil {
			return fmt.Errorf("notification: look up the username of %s: %w", t.Actor.ID, err)
		}
		// A deleted account has no username; its notification still says who acted by id.
		t.Actor.Username = names[t.Actor.ID]
	}
	d, err := t.Draft()
	if err != nil {
		return events.Permanent(err)
	}
	switch t.Audience {
	case domain.AudienceUser:
		return s.deliver(ctx, t, d, []string{t.Recipient})
	case domain.AudienceParticipants:
		for batch := range slices.Chunk(t.Recipients, s.batch) {
			if err := s.deliver(ctx, t, d, batch); err != nil {
				return err
			}
		}
	case domain.AudienceFollowers:
		err := s.followers.Each(ctx, t.Actor.ID, func(ids []string) error {
			recipients := make([]string, 0, len(ids))
			for _, id := range ids {
				if t.Notifies(id) {
					recipients = append(recipients, id)
				}
			}
			for batch := range slices.Chunk(recipients, s.batch) {
				if err := s.deliver(ctx, t, d, batch); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("notification: fan out %s %s: %w", t.Type, t.EventID, err)
		}
	}
	return nil
}

// trigger reads env as a cause of notifications; the zero Trigger (AudienceNobody) for a type
// that notifies no one.
func trigger(env events.Envelope) (domain.Trigger, error) {
	switch env.Type {
	case eventsv1.PostCreated:
		var p eventsv1.PostCreatedPayload
		if err := env.DecodePayload(&p); err != nil {
			return domain.Trigger{}, err
		}
		return wrapInvalid(env)(domain.PostCreated(env.ID, env.OccurredAt, p.PostID, p.AuthorID, p.Text))
	case eventsv1.PostLiked:
		var p eventsv1.PostLikedPayload
		if err := env.DecodePayload(&p); err != nil {
			return domain.Trigger{}, err
		}
		return wrapInvalid(env)(domain.PostLiked(env.ID, env.OccurredAt, p.PostID, p.AuthorID, p.LikerID))
	case eventsv1.PostCommented:
		var p eventsv1.PostCommentedPayload
		if err := env.DecodePayload(&p); err != nil {
			return domain.Trigger{}, err
		}
		return wrapInvalid(env)(domain.PostCommented(env.ID, env.OccurredAt, p.PostID, p.AuthorID, p.CommentID, p.CommenterID, p.Text))
	case eventsv1.UserFollowed:
		var p eventsv1.UserFollowedPayload
		if err := env.DecodePayload(&p); err != nil {
			return domain.Trigger{}, err
		}
		return wrapInvalid(env)(domain.UserFollowed(env.ID, env.OccurredAt, p.FollowerID, p.FollowerUsername, p.FolloweeID))
	case eventsv1.MessageSent:
		var p eventsv1.MessageSentPayload
		if err := env.DecodePayload(&p); err != nil {
			return domain.Trigger{}, err
		}
		return wrapInvalid(env)(domain.MessageSent(env.ID, env.OccurredAt, domain.Message{
			ID: p.MessageID, ConversationID: p.ConversationID, SenderID: p.SenderID, ParticipantIDs: p.ParticipantIDs,
			Text: p.Text, ClientMsgID: p.ClientMsgID, SentAt: p.SentAt,
		}))
	}
	return domain.Trigger{}, nil
}

// wrapInvalid names the event in a domain constructor's error.
func wrapInvalid(env events.Envelope) func(domain.Trigger, error) (domain.Trigger, error) {
	return func(t domain.Trigger, err error) (domain.Trigger, error) {
		if err != nil {
			return domain.Trigger{}, fmt.Errorf("notification: %s v%d event %s: %w", env.Type, env.SchemaVersion, env.ID, err)
		}
		return t, nil
	}
}

// deliver stores d for one batch of recipients and pushes the result to their gateways.
func (s *service) deliver(ctx context.Context, t domain.Trigger, d domain.Draft, userIDs []string) error {
	ctx, span := s.tracer.Start(ctx, "notification.deliver", trace.WithAttributes(
		attribute.String("notification.type", t.Type),
		attribute.String("notification.event_id", t.EventID),
		attribute.Int("notification.recipients", len(userIDs)),
	))
	defer span.End()
	typ := attribute.String("type", t.Type)
	stored, fresh, err := s.store.Deliver(ctx, d, userIDs)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
		return err
	}
	s.metrics.batchSize.Record(ctx, int64(len(userIDs)), metricAttrs(typ))
	s.metrics.stored.Add(ctx, int64(fresh), metricAttrs(typ))
	span.SetAttributes(attribute.Int("notification.stored", fresh))
	s.push(ctx, t.OccurredAt, stored)
	return nil
}

// push routes stored notifications to the gateway instances holding their recipients'
// connections: one presence lookup for the whole batch, then one realtimev1.Batch per
// instance (see pushTo), carrying the trace context and the event's time.
//
// It never fails the handler: the inbox is the source of truth, and a push is only the fast
// path. A client that missed one catches up from the inbox — on reconnect (Last-Event-ID), or
// when its gateway sees a gap in the seqs of the next push. Failing the handler instead would
// retry the whole event, and eventually dead-letter an event whose notifications are all
// safely stored. So a failure is logged and counted, and the event is acked.
func (s *service) push(ctx context.Context, occurredAt time.Time, stored []domain.Notification) {
	if len(stored) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.pushTimeout)
	defer cancel()
	ids := make([]string, len(stored))
	for i, n := range stored {
		ids[i] = n.UserID
	}
	routes, err := s.routes.Routes(ctx, ids)
	if err != nil {
		s.metrics.pushFailures.Add(ctx, 1, metricAttrs(attribute.String("stage", "routes")))
		s.log.WarnContext(ctx, "presence lookup failed; the batch is not pushed (its recipients catch up from the inbox)",
			slog.Int("recipients", len(ids)), slog.String("error", err.Error()))
		return
	}
	byInstance := map[string][]realtimev1.Delivery{}
	for _, n := range stored {
		for _, instance := range routes[n.UserID] {
			byInstance[instance] = append(byInstance[instance], realtimev1.Delivery{UserID: n.UserID, Notification: realtime(n)})
		}
	}
	if len(byInstance) == 0 {
		return // everyone offline
	}
	for _, instance := range slices.Sorted(maps.Keys(byInstance)) {
		s.pushTo(ctx, instance, occurredAt, byInstance[instance])
	}
}

// pushTo publishes one gateway instance's batch in a producer span, "send gateway_events", a
// child of the delivery; the batch carries that span's context, so the gateway's handling of
// it is the span's child and the trace goes on to the streams.
func (s *service) pushTo(ctx context.Context, instance string, occurredAt time.Time, deliveries []realtimev1.Delivery) {
	// Named after the channel family, not the channel: span names must not vary per instance.
	ctx, span := s.tracer.Start(ctx, "send gateway_events",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", realtimev1.Channel(instance)),
			attribute.Int("messaging.batch.message_count", len(deliveries)),
		))
	defer span.End()
	carrier := propagation.MapCarrier{}
	s.prop.Inject(ctx, carrier)
	msg, err := json.Marshal(realtimev1.Batch{
		Deliveries:  deliveries,
		TraceParent: carrier.Get("traceparent"),
		TraceState:  carrier.Get("tracestate"),
		OccurredAt:  occurredAt,
	})
	if err == nil {
		err = s.pusher.Publish(ctx, instance, msg)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
		s.metrics.pushFailures.Add(ctx, 1, metricAttrs(attribute.String("stage", "publish")))
		s.log.WarnContext(ctx, "push to a gateway failed; its recipients catch up from the inbox",
			slog.String("instance", instance), slog.Int("deliveries", len(deliveries)), slog.String("error", err.Error()))
		return
	}
	s.metrics.pushed.Add(ctx, 1)
}

// realtime returns n as clients see it (SSE data and the inbox API): its id is the id of the
// event that caused it.
func realtime(n domain.Notification) realtimev1.Notification {
	return realtimev1.Notification{Seq: n.Seq, ID: n.EventID, Type: n.Type, CreatedAt: n.CreatedAt, Read: n.Read, Data: n.Data}
}
