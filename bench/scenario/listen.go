package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piazza-social/piazza/bench/client"
	"github.com/piazza-social/piazza/bench/sse"
)

// listeners hold one event stream per user and behave like a browser's EventSource: a stream
// the server closes is reopened with the last event id seen, so that what was sent meanwhile
// is replayed and nothing is lost.
type listeners struct {
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	reconnects atomic.Int64
	resyncs    atomic.Int64
	failures   atomic.Int64 // reopen attempts that failed
}

// onEventFunc receives an event of user who, seen through gateway gw.
type onEventFunc func(who, gw int, ev sse.Event)

// listen opens one stream per account (account i on gateway i modulo their number), at most
// 64 openings at once, and returns once all are open.
func (e *env) listen(ctx context.Context, accounts []client.Account, onEvent onEventFunc) (*listeners, error) {
	lctx, cancel := context.WithCancel(context.Background())
	l := &listeners{ctx: lctx, cancel: cancel}
	var opened atomic.Int64
	e.prog.status(func() string { return fmt.Sprintf("opening streams: %d/%d", opened.Load(), len(accounts)) })
	err := forEach(ctx, len(accounts), 64, func(ctx context.Context, i int) error {
		gw := i % e.gateways()
		st := &listener{l: l, e: e, who: i, gw: gw, url: e.api(gw).EventsURL(), token: accounts[i].Token, onEvent: onEvent}
		s, err := st.open(ctx)
		if err != nil {
			return fmt.Errorf("open the stream of %s: %w", accounts[i].Username, err)
		}
		opened.Add(1)
		l.wg.Add(1)
		go st.keep(s)
		return nil
	})
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// close ends every stream.
func (l *listeners) close() {
	l.cancel()
	l.wg.Wait()
}

type listener struct {
	l       *listeners
	e       *env
	who, gw int
	url     string
	token   string
	onEvent onEventFunc
	lastID  atomic.Value // string
}

func (st *listener) open(ctx context.Context) (*sse.Stream, error) {
	h := http.Header{"Authorization": {"Bearer " + st.token}}
	if id, _ := st.lastID.Load().(string); id != "" {
		h.Set("Last-Event-ID", id)
	}
	return st.e.dialer.Open(ctx, st.url, h, func(ev sse.Event) {
		if ev.ID != "" {
			st.lastID.Store(ev.ID)
		}
		if ev.Type == "resync" {
			st.l.resyncs.Add(1)
		}
		st.onEvent(st.who, st.gw, ev)
	})
}

// keep holds s open until the listeners close, reopening it whenever the server ends it.
func (st *listener) keep(s *sse.Stream) {
	defer st.l.wg.Done()
	for {
		select {
		case <-st.l.ctx.Done():
			s.Close()
			return
		case <-s.Done():
		}
		st.l.reconnects.Add(1)
		for {
			var err error
			s, err = st.open(st.l.ctx)
			if err == nil {
				break
			}
			if errors.Is(st.l.ctx.Err(), context.Canceled) {
				return
			}
			st.l.failures.Add(1)
			select {
			case <-st.l.ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}
