package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piazza-social/piazza/platform/web"
	"github.com/piazza-social/piazza/services/gateway"
	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
)

// passwordOverBytes reports whether body has a password longer than 256 bytes.
func passwordOverBytes(body []byte) bool {
	var v struct {
		Password string `json:"password"`
	}
	_ = json.Unmarshal(body, &v)
	return len(v.Password) > 256
}

// authPaths are the routes FuzzAuthRequests aims at; the fuzzer picks one by index.
var authPaths = []string{"/v1/auth/signup", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout"}

// FuzzAuthRequests feeds arbitrary bodies to the auth endpoints (through the whole gateway,
// user-service faked) and holds every answer to these properties:
//
//   - no body makes the gateway answer 5xx;
//   - every rejection is an application/problem+json document, and every answer is one the
//     OpenAPI document allows for the route (status, headers, body schema);
//   - a body the document says is valid is never refused as validation_failed: the gateway is
//     not stricter than its contract (except for a password over 256 bytes, a limit the
//     document can state only in words: JSON Schema counts characters).
//
// The seed corpus in testdata/fuzz/FuzzAuthRequests runs with every go test.
func FuzzAuthRequests(f *testing.F) {
	h := newHarness(f, func(c *gateway.Config) { c.Limiter = allowAll })
	handler := h.gw.Handler()
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := authPaths[int(route)%len(authPaths)]
		newReq := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			return r
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, newReq())

		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), web.ProblemContentType) {
			t.Fatalf("POST %s %q: %d with content type %q", path, body, w.Code, w.Header().Get("Content-Type"))
		}
		// The request direction is checked below, in the sense that holds: encoding/json
		// matches member names case-insensitively, so the gateway accepts {"USERNAME":...}
		// where the document's closed schemas do not.
		h.contract.Check(t, newReq(), nil, gatewaytest.Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()})
		if w.Code == http.StatusBadRequest && h.contract.Valid(newReq(), body) == nil && !passwordOverBytes(body) {
			t.Fatalf("POST %s %q: the document accepts this body but the gateway answered %s", path, body, w.Body)
		}
	})
}
