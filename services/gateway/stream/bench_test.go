package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piazza-social/piazza/api/realtimev1"
	"github.com/piazza-social/piazza/platform/logging"
	"github.com/piazza-social/piazza/services/gateway/stream"
)

// runHub runs a hub on the minimal fakes behind a real HTTP server; the user of a stream is
// its ?u= parameter.
func runHub(b *testing.B) (srv *httptest.Server, push *chanPush) {
	b.Helper()
	push = &chanPush{}
	cfg := validConfig()
	cfg.Push = push
	hub, err := stream.NewHub(cfg, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	<-hub.Ready()
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := hub.Serve(w, r, stream.Client{UserID: r.URL.Query().Get("u")}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	b.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return srv, push
}

// dialStream opens a stream over a raw connection and returns once its first frame arrived.
func dialStream(b *testing.B, addr, user string) (net.Conn, *bufio.Reader) {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "GET /?u=%s HTTP/1.1\r\nHost: x\r\n\r\n", user); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 512)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(line, "retry: ") {
			return c, br
		}
	}
}

func inUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkIdleStreamMemory opens 5000 idle streams per iteration and reports the memory each
// costs the process (B/stream): the hub's own share and net/http's (its goroutine, buffers),
// plus the raw client sockets', which are small.
func BenchmarkIdleStreamMemory(b *testing.B) {
	const n = 5000
	srv, _ := runHub(b)
	addr := srv.Listener.Addr().String()
	var perStream float64
	for b.Loop() {
		before := inUse()
		conns := make([]net.Conn, 0, n)
		readers := make([]*bufio.Reader, 0, n)
		for i := range n {
			c, br := dialStream(b, addr, "u"+strconv.Itoa(i))
			conns, readers = append(conns, c), append(readers, br)
		}
		perStream = float64(inUse()-before) / n
		// Each client closes its side and reads to the end of the stream, which the server
		// writes once it has forgotten the stream: the next round starts with none left.
		for _, c := range conns {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		for i, c := range conns {
			_, _ = io.Copy(io.Discard, readers[i])
			_ = c.Close()
		}
	}
	b.ReportMetric(perStream, "B/stream")
}

// BenchmarkDeliver measures the hub's reader: decoding a push batch of one delivery and handing
// it to the user's stream, with 100 streams open and read by their clients.
func BenchmarkDeliver(b *testing.B) {
	const users = 100
	srv, push := runHub(b)
	addr := srv.Listener.Addr().String()
	for i := range users {
		c, br := dialStream(b, addr, "u"+strconv.Itoa(i))
		b.Cleanup(func() { _ = c.Close() })
		go func() { _, _ = io.Copy(io.Discard, br) }()
	}
	// Prepared ahead: the loop measures the hub, not the encoding of its input. Past the
	// prepared sequence numbers deliveries repeat, and the streams drop them as duplicates.
	const perUser = 1000
	msgs := make([][]byte, 0, users*perUser)
	for seq := int64(1); seq <= perUser; seq++ {
		for u := range users {
			msg, err := json.Marshal(realtimev1.Batch{OccurredAt: time.Now(), Deliveries: []realtimev1.Delivery{{
				UserID:       "u" + strconv.Itoa(u),
				Notification: realtimev1.Notification{Seq: seq, ID: "ev", Type: "post.liked", CreatedAt: time.Now(), Data: json.RawMessage(`{"post_id":"p1","liker_id":"u2"}`)},
			}}})
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, msg)
		}
	}
	i := 0
	for b.Loop() {
		push.ch <- msgs[i%len(msgs)]
		i++
	}
}

// BenchmarkDeliverFanOut measures the hub delivering one event to 200 users, one push batch
// of 200 deliveries (as notification-service sends it): from the batch handed to the hub to
// every user's client having read its frame (decoding, encoding the frames, the streams'
// writes, and the clients' reads, which are in this process too).
func BenchmarkDeliverFanOut(b *testing.B) {
	const users = 200
	srv, push := runHub(b)
	addr := srv.Listener.Addr().String()
	var read sync.WaitGroup // one per frame a client is to read
	for i := range users {
		c, br := dialStream(b, addr, "u"+strconv.Itoa(i))
		b.Cleanup(func() { _ = c.Close() })
		go func() {
			sc := bufio.NewScanner(br)
			for sc.Scan() {
				if bytes.HasPrefix(sc.Bytes(), []byte("id: ")) {
					read.Done()
				}
			}
		}()
	}
	seq := int64(0)
	for b.Loop() {
		b.StopTimer()
		seq++
		// The event's notification, the same for every recipient but for its sequence number
		// (here the same too).
		n := realtimev1.Notification{Seq: seq, ID: "ev" + strconv.FormatInt(seq, 10), Type: "post.created", CreatedAt: time.Now(), Data: json.RawMessage(`{"post_id":"p1","author_id":"u2"}`)}
		bt := realtimev1.Batch{OccurredAt: n.CreatedAt}
		for u := range users {
			bt.Deliveries = append(bt.Deliveries, realtimev1.Delivery{UserID: "u" + strconv.Itoa(u), Notification: n})
		}
		msg, err := json.Marshal(bt)
		if err != nil {
			b.Fatal(err)
		}
		read.Add(users)
		b.StartTimer()
		push.ch <- msg
		read.Wait()
	}
}
