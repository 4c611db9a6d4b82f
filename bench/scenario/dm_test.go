package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piazza-social/piazza/bench/client"
	"github.com/piazza-social/piazza/bench/report"
	"github.com/piazza-social/piazza/bench/sse"
)

// A deployment without messaging answers 404 (no route) or 503 (no messaging-service): dm
// says so as its outcome instead of failing the run.
func TestDMReportsNotAvailableWhenMessagingIsNotServed(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusServiceUnavailable} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var users atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/auth/signup" {
					var in struct {
						Username string `json:"username"`
					}
					_ = json.NewDecoder(r.Body).Decode(&in)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusCreated)
					fmt.Fprintf(w, `{"user":{"id":"u%d","username":%q},"access_token":"t"}`, users.Add(1), in.Username)
					return
				}
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(status)
				fmt.Fprint(w, `{"code":"not_found"}`)
			}))
			defer srv.Close()
			prog := newProgress(io.Discard, DM)
			defer prog.stop()
			e := &env{apis: []*client.Client{client.New(srv.URL, srv.Client())}, http: srv.Client(), dialer: &sse.Dialer{}, prefix: "bt", prog: prog}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := runDM(ctx, e, DMParams{Pairs: 2, Rate: 10, Duration: Duration(time.Second)})
			if s.Status != report.StatusNotAvailable || s.Reason == "" {
				t.Fatalf("status %q (%s), want not_available with a reason", s.Status, s.Reason)
			}
		})
	}
}
