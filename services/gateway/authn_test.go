package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/piazza-social/piazza/platform/errs"
)

func TestAccessTokenFailuresAre401WithTheirCodeAndABearerChallenge(t *testing.T) {
	const invalidToken = `Bearer error="invalid_token"`
	cases := []struct {
		name      string
		auth      []string
		status    int
		code      errs.Code
		challenge string
	}{
		{"no header", nil, 401, errs.TokenMissing, "Bearer"},
		{"empty header", []string{""}, 401, errs.TokenMissing, "Bearer"},
		{"another scheme", []string{"Basic YWxpY2U6c2VjcmV0"}, 401, errs.TokenInvalid, invalidToken},
		{"scheme alone", []string{"Bearer"}, 401, errs.TokenInvalid, invalidToken},
		{"two tokens", []string{"Bearer a b"}, 401, errs.TokenInvalid, invalidToken},
		{"two headers", []string{"Bearer a", "Bearer b"}, 401, errs.TokenInvalid, invalidToken},
		{"huge token", []string{"Bearer " + strings.Repeat("a", 9000)}, 401, errs.TokenInvalid, invalidToken},
		{"expired", []string{"Bearer " + tokenExpired}, 401, errs.TokenExpired, invalidToken},
		{"lower-case scheme, expired", []string{"bearer " + tokenExpired}, 401, errs.TokenExpired, invalidToken},
		{"bad signature", []string{"Bearer " + tokenTampered}, 401, errs.TokenInvalid, invalidToken},
		{"unknown token", []string{"Bearer never.issued"}, 401, errs.TokenInvalid, invalidToken},
		{"verifier fails oddly", []string{"Bearer " + tokenPlainError}, 401, errs.TokenInvalid, invalidToken},
		{"token without session", []string{"Bearer " + tokenNoSession}, 401, errs.TokenInvalid, invalidToken},
		{"keys unavailable", []string{"Bearer " + tokenUnavailable}, 503, errs.Unavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(req{method: "GET", path: "/v1/me", header: http.Header{"Authorization": tc.auth}})
			wantProblem(t, w, tc.status, tc.code)
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if n := h.users.callCount("GetUser"); n != 0 {
				t.Errorf("the handler ran (%d calls)", n)
			}
		})
	}
}

func TestARevokedSessionMakesAValidTokenInvalid(t *testing.T) {
	h := newHarness(t)
	s := h.signup("olga")
	h.users.mu.Lock()
	for _, sess := range h.users.sessions {
		sess.revoked = true
	}
	h.users.mu.Unlock()
	w := h.do(req{method: "GET", path: "/v1/me", token: s.AccessToken})
	wantProblem(t, w, http.StatusUnauthorized, errs.TokenInvalid)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

func TestASessionCheckOutageIsA503NotA401(t *testing.T) {
	h := newHarness(t)
	s := h.signup("pete")
	h.users.setFail("CheckSession", errs.New(errs.Unavailable, "db down"))
	wantProblem(t, h.do(req{method: "GET", path: "/v1/me", token: s.AccessToken}), http.StatusServiceUnavailable, errs.Unavailable)
}

// The reads whose session check rides on their user-service lookup must answer exactly as if
// they had asked first: an ended session reads nothing, an outage is a 503.
func TestAReadWhoseSessionHasEndedAnswersAsBeforeAndShowsNothingOfWhatItRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(p post) string
	}{
		{"home timeline", func(post) string { return "/v1/timeline" }},
		{"a user's posts", func(post) string { return "/v1/users/rita/posts" }},
		{"one post", func(p post) string { return "/v1/posts/" + p.ID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			reader := h.signup("quinn")
			rita := h.signup("rita")
			p := h.createPost(rita.AccessToken, "secret sauce")
			if w := h.do(req{method: "GET", path: tc.path(p), token: reader.AccessToken}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "secret sauce") {
				t.Fatalf("with an open session: %d %s", w.Code, w.Body)
			}

			h.users.setFail("CheckSession", errs.New(errs.Unavailable, "db down"))
			w := h.do(req{method: "GET", path: tc.path(p), token: reader.AccessToken})
			wantProblem(t, w, http.StatusServiceUnavailable, errs.Unavailable)
			if strings.Contains(w.Body.String(), "secret sauce") {
				t.Errorf("the answer of an unchecked session shows the post: %s", w.Body)
			}
			h.users.setFail("CheckSession", nil)

			h.users.mu.Lock()
			for _, sess := range h.users.sessions {
				sess.revoked = true
			}
			h.users.mu.Unlock()
			w = h.do(req{method: "GET", path: tc.path(p), token: reader.AccessToken})
			wantProblem(t, w, http.StatusUnauthorized, errs.TokenInvalid)
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if strings.Contains(w.Body.String(), "secret sauce") || w.Header().Get("Cache-Control") == "private, no-store" {
				t.Errorf("the answer of an ended session carries the read: %v %s", w.Header(), w.Body)
			}
		})
	}
}

func TestAReadChecksItsSessionWithinItsUserLookupOrAloneWhenItMakesNone(t *testing.T) {
	h := newHarness(t)
	reader := h.signup("sam")
	tina := h.signup("tina")
	checks := func() (alone, carried int) {
		return h.users.callCount("CheckSession"), h.users.callCount("check_session")
	}
	read := func(path string) {
		t.Helper()
		if w := h.do(req{method: "GET", path: path, token: reader.AccessToken}); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}

	// No post yet: the timeline resolves no author, so the check is a call of its own.
	a0, c0 := checks()
	read("/v1/timeline")
	if a, c := checks(); a-a0 != 1 || c-c0 != 0 {
		t.Errorf("empty timeline: %d checks alone, %d carried; want 1, 0", a-a0, c-c0)
	}
	p := h.createPost(tina.AccessToken, "hello")
	for _, path := range []string{"/v1/timeline", "/v1/users/tina/posts", "/v1/posts/" + p.ID} {
		a0, c0 := checks()
		read(path)
		if a, c := checks(); a-a0 != 0 || c-c0 != 1 {
			t.Errorf("%s: %d checks alone, %d carried; want 0, 1", path, a-a0, c-c0)
		}
	}
}

func TestAReadThatLooksNobodyUpStillRefusesAnEndedSession(t *testing.T) {
	h := newHarness(t)
	reader := h.signup("uma")
	h.users.mu.Lock()
	for _, sess := range h.users.sessions {
		sess.revoked = true
	}
	h.users.mu.Unlock()
	wantProblem(t, h.do(req{method: "GET", path: "/v1/timeline", token: reader.AccessToken}), http.StatusUnauthorized, errs.TokenInvalid)
}
