package gateway

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/piazza-social/piazza/platform/errs"
	"github.com/piazza-social/piazza/services/gateway/stream"
	"github.com/piazza-social/piazza/services/gateway/tickets"
)

// The event stream's handlers: POST /v1/events/ticket issues a one-time ticket, GET /v1/events
// authenticates the stream (bearer token or ticket) and hands it to the hub.

// ticketRE is the shape of the tickets the gateway issues (crypto/rand.Text: 26 characters of
// base32, 128 bits).
var ticketRE = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// seqRE is the shape of a sequence number: the event ids the stream sends.
var seqRE = regexp.MustCompile(`^[0-9]{1,19}$`)

func (s *Service) issueTicket(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c := callerFrom(ctx)
	id := rand.Text()
	t := tickets.Ticket{UserID: c.UserID, SessionID: c.SessionID, ExpiresAt: c.ExpiresAt}
	if err := s.cfg.Tickets.Put(ctx, id, t, s.cfg.TicketTTL); err != nil {
		return errs.Wrap(err, errs.Unavailable, "No ticket can be issued right now; retry shortly.")
	}
	// A ticket is a credential: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	s.rs.WriteJSON(w, r, http.StatusCreated, ticketResponse{Ticket: id, ExpiresIn: int64(s.cfg.TicketTTL / time.Second)})
	return nil
}

// events opens the caller's event stream. Every refusal (bad credentials, a malformed
// Last-Event-ID, an unavailable inbox) is a problem answered before the first byte of the
// stream.
func (s *Service) events(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodHead {
		// The mux routes HEAD to GET routes; a stream without a body makes no sense.
		w.Header().Set("Allow", http.MethodGet)
		return errs.New(errs.MethodNotAllowed, "Open the event stream with GET.")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errs.Validation("The query string is malformed.", errs.Field("", "malformed query string"))
	}
	cl, err := s.streamClient(r, q)
	if err != nil {
		return err
	}
	if cl.Resume, cl.LastEventID, err = lastEventID(r.Header.Values("Last-Event-ID"), q); err != nil {
		return err
	}
	return s.hub.Serve(w, r, cl)
}

// streamClient authenticates a stream: by its Authorization header when it has one, as every
// protected route does; else by a ticket, which is spent whatever the outcome.
func (s *Service) streamClient(r *http.Request, q url.Values) (stream.Client, error) {
	ctx := r.Context()
	tks, hasTicket := q["ticket"]
	if len(r.Header.Values("Authorization")) > 0 || !hasTicket {
		c, err := s.authenticate(r)
		if err != nil {
			return stream.Client{}, err
		}
		return stream.Client{UserID: c.UserID, ExpiresAt: c.ExpiresAt}, nil
	}
	if len(tks) != 1 || !ticketRE.MatchString(tks[0]) {
		return stream.Client{}, errs.New(errs.TokenInvalid, "The ticket is malformed.")
	}
	t, err := s.cfg.Tickets.Take(ctx, tks[0])
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		return stream.Client{}, errs.New(errs.TokenInvalid, "The ticket is unknown, expired or already used.")
	case err != nil:
		return stream.Client{}, errs.Wrap(err, errs.Unavailable, "The ticket cannot be checked right now; retry shortly.")
	}
	if !t.ExpiresAt.IsZero() && !s.cfg.Now().Before(t.ExpiresAt) {
		return stream.Client{}, errs.New(errs.TokenExpired, "The access token this ticket was issued for has expired.")
	}
	if err := s.checkSession(ctx, t.UserID, t.SessionID); err != nil {
		return stream.Client{}, err
	}
	return stream.Client{UserID: t.UserID, ExpiresAt: t.ExpiresAt}, nil
}

// lastEventID is the sequence number a resuming client saw last: the Last-Event-ID header that
// EventSource sends when it reconnects, else the last_event_id query parameter (for a client
// that remembers it across page loads).
func lastEventID(header []string, q url.Values) (resume bool, seq int64, err error) {
	var v string
	switch vs, inQuery := q["last_event_id"]; {
	case len(header) > 1:
		return false, 0, errs.Validation("Send at most one Last-Event-ID header.", errs.Field("/last_event_id", "must be given once"))
	case len(header) == 1:
		v = header[0]
	case inQuery && len(vs) > 1:
		return false, 0, errs.Validation("The query is invalid.", errs.Field("/last_event_id", "must be given once"))
	case inQuery:
		v = vs[0]
	default:
		return false, 0, nil
	}
	if v == "" {
		return false, 0, nil // as if absent: nothing seen yet
	}
	seq, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || !seqRE.MatchString(v) {
		return false, 0, errs.Validation("The last event id is not one this API sent.",
			errs.Field("/last_event_id", "must be a sequence number: a non-negative integer"))
	}
	return true, seq, nil
}
