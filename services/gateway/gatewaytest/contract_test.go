package gatewaytest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
)

// recordingTB records failures instead of failing, so the tests can see what Check rejects.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

const (
	problemCT = "application/problem+json"
	jsonCT    = "application/json"
	traceID   = "0123456789abcdef0123456789abcdef"
	spanID    = "0123456789abcdef"
	me        = `{"id":"u1","username":"ann","display_name":"Ann","bio":"","followers_count":0,"following_count":2,"created_at":"2030-01-02T03:04:05Z","email":"ann@example.com"}`
)

func problem(status int, code string) string {
	return fmt.Sprintf(`{"type":"urn:piazza:problem:%s","title":"t","status":%d,"code":%q,"trace_id":%q,"span_id":%q}`, code, status, code, traceID, spanID)
}

func TestCheckAcceptsWhatTheDocumentSaysAndRejectsTheRest(t *testing.T) {
	c := gatewaytest.LoadContract(t)
	signup := `{"username":"ann","email":"ann@example.com","password":"correct horse battery"}`
	auth := `{"user":` + me + `,"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":900}`
	created := http.Header{"Content-Type": {jsonCT}, "Cache-Control": {"no-store"}, "Location": {"/v1/users/ann"}}
	cases := []struct {
		name         string
		method, path string
		reqBody      string
		status       int
		header       http.Header
		body         string
		ok           bool
	}{
		{"me", "GET", "/v1/me", "", 200, http.Header{"Content-Type": {jsonCT}}, me, true},
		{"me without email", "GET", "/v1/me", "", 200, http.Header{"Content-Type": {jsonCT}}, strings.Replace(me, `,"email":"ann@example.com"`, "", 1), false},
		{"me with an extra member", "GET", "/v1/me", "", 200, http.Header{"Content-Type": {jsonCT}}, strings.Replace(me, `"bio":""`, `"bio":"","admin":true`, 1), false},
		{"me as a 401 token problem", "GET", "/v1/me", "", 401, http.Header{"Content-Type": {problemCT}, "Www-Authenticate": {"Bearer"}}, problem(401, "token_missing"), true},
		{"me 401 with another code", "GET", "/v1/me", "", 401, http.Header{"Content-Type": {problemCT}, "Www-Authenticate": {"Bearer"}}, problem(401, "unauthenticated"), false},
		{"me 401 without a challenge", "GET", "/v1/me", "", 401, http.Header{"Content-Type": {problemCT}}, problem(401, "token_missing"), false},
		{"an undocumented status", "GET", "/v1/me", "", 418, http.Header{"Content-Type": {problemCT}}, problem(418, "internal"), false},
		{"an error as plain JSON", "GET", "/v1/users/ann", "", 404, http.Header{"Content-Type": {jsonCT}}, problem(404, "not_found"), false},
		{"signup", "POST", "/v1/auth/signup", signup, 201, created, auth, true},
		{"signup without no-store", "POST", "/v1/auth/signup", signup, 201, http.Header{"Content-Type": {jsonCT}, "Location": {"/v1/users/ann"}}, auth, false},
		{"signup with another token type", "POST", "/v1/auth/signup", signup, 201, created, strings.Replace(auth, `"Bearer"`, `"bearer"`, 1), false},
		{"signup accepting an unknown member", "POST", "/v1/auth/signup", strings.Replace(signup, `{`, `{"x":1,`, 1), 201, created, auth, false},
		{"signup accepting two JSON values", "POST", "/v1/auth/signup", signup + " {}", 201, created, auth, false},
		{"login 429", "POST", "/v1/auth/login", `{}`, 429, http.Header{"Content-Type": {problemCT}, "Retry-After": {"3"}}, problem(429, "rate_limited"), true},
		{"login 429 without Retry-After", "POST", "/v1/auth/login", `{}`, 429, http.Header{"Content-Type": {problemCT}}, problem(429, "rate_limited"), false},
		{"last page", "GET", "/v1/users/ann/followers", "", 200, http.Header{"Content-Type": {jsonCT}}, `{"items":[],"next_cursor":null}`, true},
		{"page with a next cursor", "GET", "/v1/users/ann/followers?limit=1", "", 200, http.Header{"Content-Type": {jsonCT}}, `{"items":[],"next_cursor":"abc"}`, true},
		{"page with a numeric next_cursor", "GET", "/v1/users/ann/followers", "", 200, http.Header{"Content-Type": {jsonCT}}, `{"items":[],"next_cursor":1}`, false},
		{"page without next_cursor", "GET", "/v1/users/ann/followers", "", 200, http.Header{"Content-Type": {jsonCT}}, `{"items":[]}`, false},
		{"unknown route 404", "GET", "/nowhere", "", 404, http.Header{"Content-Type": {problemCT}}, problem(404, "not_found"), true},
		{"unknown route 200", "GET", "/nowhere", "", 200, http.Header{"Content-Type": {jsonCT}}, `{}`, false},
		{"wrong method 405", "PUT", "/v1/me", "", 405, http.Header{"Content-Type": {problemCT}}, problem(405, "method_not_allowed"), true},
		{"problem without trace id", "GET", "/nowhere", "", 404, http.Header{"Content-Type": {problemCT}}, `{"type":"x","title":"t","status":404,"code":"not_found"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			var reqBody []byte
			if tc.reqBody != "" {
				reqBody = []byte(tc.reqBody)
			}
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.reqBody))
			r.Header.Set("Content-Type", jsonCT)
			c.Check(rec, r, reqBody, gatewaytest.Response{Status: tc.status, Header: tc.header, Body: []byte(tc.body)})
			if ok := len(rec.failures) == 0; ok != tc.ok {
				t.Errorf("accepted %v, want %v; failures: %q", ok, tc.ok, rec.failures)
			}
		})
	}
}
