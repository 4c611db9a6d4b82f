package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func collect() (func(Event), func() []Event) {
	var mu sync.Mutex
	var evs []Event
	return func(e Event) {
			mu.Lock()
			evs = append(evs, e)
			mu.Unlock()
		}, func() []Event {
			mu.Lock()
			defer mu.Unlock()
			return append([]Event(nil), evs...)
		}
}

func TestOpenParsesFramesAndSendsTheGivenHeaders(t *testing.T) {
	long := strings.Repeat("x", 5000) // longer than the read buffer
	var gotAuth, gotAccept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotAccept = r.Header.Get("Authorization"), r.Header.Get("Accept")
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "retry: 1000\n\n: ping\n\nid: 1\nevent: notification\ndata: {\"a\":1}\n\n")
		fmt.Fprint(w, "data: line one\r\ndata: line two\r\n\r\n")
		fmt.Fprintf(w, "id: 3\ndata: %s\n\n", long)
	}))
	defer srv.Close()

	on, got := collect()
	s, err := (&Dialer{}).Open(context.Background(), srv.URL+"/events?x=1", http.Header{"Authorization": {"Bearer t"}}, on)
	if err != nil {
		t.Fatal(err)
	}
	<-s.Done() // the handler returns, the server ends the stream
	if !errors.Is(s.Err(), io.EOF) {
		t.Errorf("Err() = %v, want EOF after the server ended the stream", s.Err())
	}
	want := []Event{
		{ID: "1", Type: "notification", Data: `{"a":1}`},
		{ID: "1", Type: "message", Data: "line one\nline two"},
		{ID: "3", Type: "message", Data: long},
	}
	evs := got()
	if len(evs) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(evs), evs, len(want))
	}
	for i, w := range want {
		e := evs[i]
		if e.ID != w.ID || e.Type != w.Type || e.Data != w.Data || e.At.IsZero() {
			t.Errorf("event %d = {%q %q %.20q %v}, want {%q %q %.20q}", i, e.ID, e.Type, e.Data, e.At, w.ID, w.Type, w.Data)
		}
	}
	if s.Events() != 3 {
		t.Errorf("Events() = %d, want 3", s.Events())
	}
	if gotAuth != "Bearer t" || gotAccept != "text/event-stream" {
		t.Errorf("server saw Authorization %q, Accept %q", gotAuth, gotAccept)
	}
}

func TestOpenReportsARefusedStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"code":"token_expired"}`)
	}))
	defer srv.Close()
	_, err := (&Dialer{}).Open(context.Background(), srv.URL, nil, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !strings.Contains(se.Body, "token_expired") {
		t.Fatalf("err = %v, want a StatusError 401 with the body", err)
	}
}

func TestOpenUsesTheLocalAddressesInTurn(t *testing.T) {
	seen := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		seen <- host
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	d := &Dialer{LocalAddrs: LoopbackSources(2, 3)}
	var streams []*Stream
	for range 4 {
		s, err := d.Open(context.Background(), srv.URL, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	got := map[string]int{}
	for range 4 {
		got[<-seen]++
	}
	if got["127.0.0.2"] != 2 || got["127.0.0.3"] != 2 {
		t.Errorf("source addresses %v, want two connections from each of 127.0.0.2 and 127.0.0.3", got)
	}
	for _, s := range streams {
		s.Close()
		if s.Err() != nil {
			t.Errorf("Err() after Close = %v, want nil", s.Err())
		}
	}
}

func TestOpenGivesUpWhenTheContextEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		c, err := ln.Accept() // accept, then never answer
		if err == nil {
			<-stop
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&Dialer{}).Open(ctx, "http://"+ln.Addr().String(), nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestLoopbackSources(t *testing.T) {
	got := LoopbackSources(2, 4)
	want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("LoopbackSources(2, 4) = %v, want %v", got, want)
	}
	if n := len(LoopbackSources(250, 255)); n != 6 {
		t.Fatalf("LoopbackSources(250, 255) has %d addresses, want 6", n)
	}
}
