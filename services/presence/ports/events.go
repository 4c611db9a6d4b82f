package ports

import (
	"context"
	"fmt"

	"github.com/piazza-social/piazza/api/eventsv1"
	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/platform/events"
	"github.com/piazza-social/piazza/services/presence/app"
	"github.com/piazza-social/piazza/services/presence/domain"
)

// EventHandler returns the handler of topic eventsv1.TopicPresence: presence.connected and
// presence.disconnected are recorded in the session history; other event types on the topic
// are acknowledged and ignored (a newer producer may add some). An event whose payload is
// malformed or incomplete is Permanent (dead-lettered at once); a failure of the store is
// retried by the router. Recording is idempotent, so redelivery is harmless.
func EventHandler(a *app.Application) events.Handler {
	return func(ctx context.Context, ev events.Envelope) error {
		var record app.Handler[domain.Event, app.None]
		switch ev.Type {
		case eventsv1.PresenceConnected:
			record = a.RecordConnected
		case eventsv1.PresenceDisconnected:
			record = a.RecordDisconnected
		default:
			return nil
		}
		var p eventsv1.PresencePayload
		if err := ev.DecodePayload(&p); err != nil {
			return err
		}
		_, err := record.Handle(ctx, domain.Event{UserID: p.UserID, ConnectionID: p.ConnectionID, InstanceID: p.InstanceID, At: p.At})
		if errs.CodeOf(err) == errs.ValidationFailed {
			return events.Permanent(fmt.Errorf("%s event %s: %w", ev.Type, ev.ID, err))
		}
		return err
	}
}
