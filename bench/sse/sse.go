// Package sse is a Server-Sent Events client built for load tests: it holds many streams open
// at once against any SSE URL with any request headers (so other SSE servers can be measured
// the same way), spreads the connections over several local source addresses (each source
// address has its own range of ephemeral ports, so tens of thousands of connections to one
// server do not run out of ports), and hands every event to a callback together with the time
// it arrived.
//
// A stream costs one goroutine and two small buffers: it speaks HTTP/1.1 on its own
// connection instead of going through net/http's transport, which would add two goroutines
// and larger buffers per connection.
package sse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"
)

// Event is one dispatched SSE event.
type Event struct {
	ID   string
	Type string // "message" when the frame named none
	Data string
	// At is when the blank line that ends the frame was read.
	At time.Time
}

// Dialer opens streams. Its zero value connects from the system's choice of source address.
// A Dialer is safe for concurrent use.
type Dialer struct {
	// LocalAddrs are the source addresses of new connections, used in turn. Empty: the
	// system chooses.
	LocalAddrs []netip.Addr
	// ConnectTimeout bounds the connection and the response headers; default 30s.
	ConnectTimeout time.Duration
	// TLS configures https URLs; nil uses the defaults.
	TLS *tls.Config

	next atomic.Uint64
}

// StatusError is the answer of a server that did not open a stream.
type StatusError struct {
	Status      int
	ContentType string
	Body        string // the start of the body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sse: status %d (%s): %s", e.Status, e.ContentType, e.Body)
}

// Stream is one open event stream.
type Stream struct {
	conn   net.Conn
	done   chan struct{}
	closed atomic.Bool
	err    error
	events atomic.Int64
}

// Open connects to rawURL (http or https) with the given extra request headers and returns
// once the server answered 200 with a text/event-stream body; any other answer is a
// *StatusError. onEvent, when not nil, is called for every event from the stream's own
// goroutine (it must be quick: a slow callback holds back that stream's reads). ctx bounds
// only the opening.
func (d *Dialer) Open(ctx context.Context, rawURL string, header http.Header, onEvent func(Event)) (*Stream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sse: unsupported scheme %q", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	timeout := d.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	nd := net.Dialer{}
	if n := len(d.LocalAddrs); n > 0 {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(d.LocalAddrs[d.next.Add(1)%uint64(n)], 0))
	}
	conn, err := nd.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	if u.Scheme == "https" {
		cfg := d.TLS.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		conn = tls.Client(conn, cfg)
	}
	// The context bounds the handshake: closing the connection interrupts any read or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	resp, err := handshake(conn, u, header)
	if !stop() || err != nil {
		conn.Close()
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("sse: open %s: %w", u.Redacted(), context.Cause(ctx))
		}
		return nil, err
	}
	s := &Stream{conn: conn, done: make(chan struct{})}
	go s.read(resp.Body, onEvent)
	return s, nil
}

// handshake writes the request and reads the response headers.
func handshake(conn net.Conn, u *url.URL, header http.Header) (*http.Response, error) {
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", u.RequestURI(), u.Host)
	if err := header.Write(&req); err != nil {
		return nil, err
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, fmt.Errorf("sse: send request: %w", err)
	}
	br := bufio.NewReaderSize(conn, 2048)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, fmt.Errorf("sse: read response: %w", err)
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !isEventStream(ct) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, &StatusError{Status: resp.StatusCode, ContentType: ct, Body: string(body)}
	}
	return resp, nil
}

func isEventStream(ct string) bool {
	const want = "text/event-stream"
	return len(ct) >= len(want) && ct[:len(want)] == want
}

// Close ends the stream from the client side and waits for its reader to stop.
func (s *Stream) Close() {
	s.closed.Store(true)
	s.conn.Close()
	<-s.done
}

// Done is closed when the stream has ended, by Close or by the server.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err says why a stream ended: nil after Close, io.EOF when the server ended it cleanly,
// otherwise the read error. Valid after Done is closed.
func (s *Stream) Err() error { return s.err }

// Events is the number of events dispatched so far.
func (s *Stream) Events() int64 { return s.events.Load() }

// read parses the body until it ends. Comments (heartbeats) and retry fields are skipped.
func (s *Stream) read(body io.ReadCloser, onEvent func(Event)) {
	defer close(s.done)
	defer body.Close()
	r := bufio.NewReaderSize(body, 2048)
	var (
		id, typ, data []byte
		hasData       bool
		long          []byte // a line longer than the buffer, assembled
	)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if err != nil {
			if !s.closed.Load() {
				s.err = err
			}
			return
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if hasData || len(typ) > 0 {
				s.events.Add(1)
				if onEvent != nil {
					ev := Event{ID: string(id), Type: string(typ), Data: string(data), At: time.Now()}
					if ev.Type == "" {
						ev.Type = "message"
					}
					onEvent(ev)
				}
			}
			typ, data, hasData = typ[:0], data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			id = append(id[:0], value...)
		case "event":
			typ = append(typ[:0], value...)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
}

// LoopbackSources returns 127.0.0.first … 127.0.0.last, the source addresses for many
// connections to a server on loopback.
func LoopbackSources(first, last byte) []netip.Addr {
	var out []netip.Addr
	for b := int(first); b <= int(last); b++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(b)}))
	}
	return out
}
