package gateway_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/errs"
)

func TestSignupCreatesTheAccountAndAnswers201WithASession(t *testing.T) {
	h := newHarness(t)
	w := h.do(req{method: "POST", path: "/v1/auth/signup",
		body: `{"username":"Alice_1","email":"Alice@Example.com","password":"correct horse battery"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	got := decodeJSON[tokens](t, w)
	if got.User.Username != "alice_1" || got.User.Email != "alice@example.com" || got.User.ID == "" {
		t.Errorf("user %+v", got.User)
	}
	if got.TokenType != "Bearer" || got.AccessToken == "" || got.RefreshToken == "" {
		t.Errorf("tokens %+v", got)
	}
	if got.ExpiresIn != int64(accessTTL/time.Second) {
		t.Errorf("expires_in %d, want %d", got.ExpiresIn, int64(accessTTL/time.Second))
	}
	if want := h.clock.Now().UTC().Format(time.RFC3339); got.User.CreatedAt != want {
		t.Errorf("created_at %q, want %q", got.User.CreatedAt, want)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if loc := w.Header().Get("Location"); loc != "/v1/users/alice_1" {
		t.Errorf("Location %q", loc)
	}
	// The new session works at once.
	if w := h.do(req{method: "GET", path: "/v1/me", token: got.AccessToken}); w.Code != http.StatusOK {
		t.Errorf("GET /v1/me with the new token: %d %s", w.Code, w.Body)
	}
}

func TestSignupWithATakenUsernameIsAConflict(t *testing.T) {
	h := newHarness(t)
	h.signup("bob")
	w := h.do(req{method: "POST", path: "/v1/auth/signup",
		body: `{"username":"BOB","email":"other@example.com","password":"correct horse battery"}`})
	wantProblem(t, w, http.StatusConflict, errs.Conflict)
}

func TestInvalidAuthBodiesAreRejectedAtTheEdgeWithPointers(t *testing.T) {
	cases := []struct {
		name, path, body string
		pointers         []string
	}{
		{"unknown member", "/v1/auth/signup", `{"username":"carol","email":"c@example.com","password":"correct horse battery","admin":true}`, []string{"/admin"}},
		{"wrong type", "/v1/auth/signup", `{"username":42,"email":"c@example.com","password":"correct horse battery"}`, []string{"/username"}},
		{"everything missing", "/v1/auth/signup", `{}`, []string{"/username", "/email", "/password"}},
		{"short username and password", "/v1/auth/signup", `{"username":"ab","email":"c@example.com","password":"short"}`, []string{"/username", "/password"}},
		{"long username", "/v1/auth/signup", `{"username":"` + strings.Repeat("a", 31) + `","email":"c@example.com","password":"correct horse battery"}`, []string{"/username"}},
		{"username with a dash", "/v1/auth/signup", `{"username":"car-ol","email":"c@example.com","password":"correct horse battery"}`, []string{"/username"}},
		{"not an email", "/v1/auth/signup", `{"username":"carol","email":"carol at example","password":"correct horse battery"}`, []string{"/email"}},
		{"password too long", "/v1/auth/signup", `{"username":"carol","email":"c@example.com","password":"` + strings.Repeat("p", 257) + `"}`, []string{"/password"}},
		{"password over 256 bytes", "/v1/auth/signup", `{"username":"carol","email":"c@example.com","password":"` + strings.Repeat("é", 129) + `"}`, []string{"/password"}},
		{"login without password", "/v1/auth/login", `{"login":"carol"}`, []string{"/password"}},
		{"login with null login", "/v1/auth/login", `{"login":null,"password":"x"}`, []string{"/login"}},
		{"login array", "/v1/auth/login", `[]`, []string{""}},
		{"refresh token number", "/v1/auth/refresh", `{"refresh_token":1}`, []string{"/refresh_token"}},
		{"refresh token empty", "/v1/auth/refresh", `{"refresh_token":""}`, []string{"/refresh_token"}},
		{"logout unknown member", "/v1/auth/logout", `{"refresh_token":"rt","all":true}`, []string{"/all"}},
		{"not JSON", "/v1/auth/login", `{"login":`, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.do(req{method: "POST", path: tc.path, body: tc.body})
			p := wantProblem(t, w, http.StatusBadRequest, errs.ValidationFailed)
			if got := pointers(p); !slices.Equal(got, tc.pointers) {
				t.Errorf("pointers %q, want %q", got, tc.pointers)
			}
			for _, m := range []string{"SignUp", "Login", "Refresh", "Logout"} {
				if n := h.users.callCount(m); n != 0 {
					t.Errorf("user-service %s called %d times for an invalid body", m, n)
				}
			}
		})
	}
}

func TestABodyWithoutJSONContentTypeIsRejected(t *testing.T) {
	h := newHarness(t)
	w := h.do(req{method: "POST", path: "/v1/auth/login", body: `{"login":"a","password":"b"}`,
		header: http.Header{"Content-Type": {"text/plain"}}})
	wantProblem(t, w, http.StatusBadRequest, errs.ValidationFailed)
}

func TestOversizeBodiesAre413WhetherDeclaredOrNot(t *testing.T) {
	big := `{"login":"` + strings.Repeat("a", 20<<10) + `","password":"x"}`
	t.Run("declared length", func(t *testing.T) {
		h := newHarness(t)
		wantProblem(t, h.do(req{method: "POST", path: "/v1/auth/login", body: big}), http.StatusRequestEntityTooLarge, errs.PayloadTooLarge)
	})
	t.Run("chunked", func(t *testing.T) {
		h := newHarness(t)
		r := req{method: "POST", path: "/v1/auth/signup", body: big, header: http.Header{"Transfer-Encoding": {"chunked"}}}
		hr := h.newRequest(r)
		hr.ContentLength = -1 // length unknown until read
		wantProblem(t, h.serve(hr), http.StatusRequestEntityTooLarge, errs.PayloadTooLarge)
	})
}

func TestLoginWithUsernameOrEmailInAnyCaseStartsASession(t *testing.T) {
	h := newHarness(t)
	h.signup("dave")
	for _, login := range []string{"dave", "DAVE", "Dave@Example.COM"} {
		w := h.do(req{method: "POST", path: "/v1/auth/login", body: `{"login":"` + login + `","password":"correct horse battery"}`})
		if w.Code != http.StatusOK {
			t.Fatalf("login %q: %d %s", login, w.Code, w.Body)
		}
		if got := decodeJSON[tokens](t, w); got.User.Username != "dave" || got.AccessToken == "" {
			t.Errorf("login %q: %+v", login, got)
		}
	}
}

func TestWrongPasswordAndUnknownAccountGetTheSameAnswer(t *testing.T) {
	h := newHarness(t)
	h.signup("erin")
	wrong := wantProblem(t, h.do(req{method: "POST", path: "/v1/auth/login", body: `{"login":"erin","password":"not the password"}`}),
		http.StatusUnauthorized, errs.Unauthenticated)
	unknown := wantProblem(t, h.do(req{method: "POST", path: "/v1/auth/login", body: `{"login":"nobody","password":"not the password"}`}),
		http.StatusUnauthorized, errs.Unauthenticated)
	if wrong.Detail != unknown.Detail {
		t.Errorf("details differ: %q vs %q", wrong.Detail, unknown.Detail)
	}
}

func TestRefreshRotatesThePairAndReuseEndsTheSession(t *testing.T) {
	h := newHarness(t)
	first := h.signup("frank")

	w := h.do(req{method: "POST", path: "/v1/auth/refresh", body: `{"refresh_token":"` + first.RefreshToken + `"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", w.Code, w.Body)
	}
	second := decodeJSON[tokens](t, w)
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("tokens not rotated: %+v", second)
	}

	// Presenting the spent token again ends the session: its newest access token stops working.
	w = h.do(req{method: "POST", path: "/v1/auth/refresh", body: `{"refresh_token":"` + first.RefreshToken + `"}`})
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("reused refresh: %d %s", w.Code, w.Body)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/me", token: second.AccessToken}), http.StatusUnauthorized, errs.TokenInvalid)
}

func TestLogoutEndsTheSessionAndItsAccessTokenBecomesInvalid(t *testing.T) {
	h := newHarness(t)
	s := h.signup("grace")

	w := h.do(req{method: "POST", path: "/v1/auth/logout", body: `{"refresh_token":"` + s.RefreshToken + `"}`})
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("logout: %d %q", w.Code, w.Body)
	}
	w = h.do(req{method: "GET", path: "/v1/me", token: s.AccessToken})
	wantProblem(t, w, http.StatusUnauthorized, errs.TokenInvalid)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	// Logging out again is fine.
	if w := h.do(req{method: "POST", path: "/v1/auth/logout", body: `{"refresh_token":"` + s.RefreshToken + `"}`}); w.Code != http.StatusNoContent {
		t.Errorf("second logout: %d %s", w.Code, w.Body)
	}
}

func TestMeIsTheCallerWithEmailAndPatchChangesOnlyWhatIsGiven(t *testing.T) {
	h := newHarness(t)
	s := h.signup("heidi")

	w := h.do(req{method: "GET", path: "/v1/me", token: s.AccessToken})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/me: %d %s", w.Code, w.Body)
	}
	type me struct {
		ID, Username, Email, Bio string
		DisplayName              string `json:"display_name"`
	}
	if got := decodeJSON[me](t, w); got.ID != s.User.ID || got.Email != "heidi@example.com" {
		t.Errorf("me %+v", got)
	}

	w = h.do(req{method: "PATCH", path: "/v1/me", token: s.AccessToken, body: `{"bio":"Hi there"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("PATCH bio: %d %s", w.Code, w.Body)
	}
	if got := decodeJSON[me](t, w); got.Bio != "Hi there" || got.DisplayName != "heidi" {
		t.Errorf("after bio: %+v", got)
	}
	w = h.do(req{method: "PATCH", path: "/v1/me", token: s.AccessToken, body: `{"display_name":"Heidi K","bio":null}`})
	if got := decodeJSON[me](t, w); got.Bio != "Hi there" || got.DisplayName != "Heidi K" {
		t.Errorf("after display name: %+v", got)
	}

	w = h.do(req{method: "PATCH", path: "/v1/me", token: s.AccessToken,
		body: `{"display_name":"` + strings.Repeat("é", 51) + `","bio":"` + strings.Repeat("b", 161) + `"}`})
	p := wantProblem(t, w, http.StatusBadRequest, errs.ValidationFailed)
	if got := pointers(p); !slices.Equal(got, []string{"/display_name", "/bio"}) {
		t.Errorf("pointers %q", got)
	}
	// Limits count characters, not bytes: 50 two-byte characters fit.
	w = h.do(req{method: "PATCH", path: "/v1/me", token: s.AccessToken, body: `{"display_name":"` + strings.Repeat("é", 50) + `"}`})
	if w.Code != http.StatusOK {
		t.Errorf("50 characters: %d %s", w.Code, w.Body)
	}
}

func TestProtectedRoutesNeedAToken(t *testing.T) {
	h := newHarness(t)
	for _, r := range []req{
		{method: "GET", path: "/v1/me"},
		{method: "PATCH", path: "/v1/me", body: `{}`},
		{method: "POST", path: "/v1/users/someone/follow"},
		{method: "DELETE", path: "/v1/users/someone/follow"},
	} {
		w := h.do(r)
		wantProblem(t, w, http.StatusUnauthorized, errs.TokenMissing)
		if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("%s %s: WWW-Authenticate %q", r.method, r.path, got)
		}
	}
}

func TestGetUserIsPublicWithoutEmail(t *testing.T) {
	h := newHarness(t)
	h.signup("ivan")
	w := h.do(req{method: "GET", path: "/v1/users/IVAN"})
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "email") {
		t.Errorf("public profile shows an email: %s", w.Body)
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/users/nobody"}), http.StatusNotFound, errs.NotFound)
}

func TestAUsernameNoAccountCanHaveIsNotFoundWithoutAskingUserService(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/v1/users/ab", "/v1/users/no-dash", "/v1/users/" + strings.Repeat("x", 31), "/v1/users/%C3%A9t%C3%A9/followers"} {
		wantProblem(t, h.do(req{method: "GET", path: p}), http.StatusNotFound, errs.NotFound)
	}
	if n := h.users.callCount("GetUser") + h.users.callCount("ListFollowers"); n != 0 {
		t.Errorf("user-service called %d times", n)
	}
}

func TestFollowAndUnfollowAreIdempotentAndShowInCounts(t *testing.T) {
	h := newHarness(t)
	judy := h.signup("judy")
	h.signup("karl")

	for range 2 {
		if w := h.do(req{method: "POST", path: "/v1/users/karl/follow", token: judy.AccessToken}); w.Code != http.StatusNoContent {
			t.Fatalf("follow: %d %s", w.Code, w.Body)
		}
	}
	type counts struct {
		Followers int64 `json:"followers_count"`
		Following int64 `json:"following_count"`
	}
	if got := decodeJSON[counts](t, h.do(req{method: "GET", path: "/v1/users/karl"})); got.Followers != 1 {
		t.Errorf("karl after follow: %+v", got)
	}
	if got := decodeJSON[counts](t, h.do(req{method: "GET", path: "/v1/me", token: judy.AccessToken})); got.Following != 1 {
		t.Errorf("judy after follow: %+v", got)
	}
	for range 2 {
		if w := h.do(req{method: "DELETE", path: "/v1/users/karl/follow", token: judy.AccessToken}); w.Code != http.StatusNoContent {
			t.Fatalf("unfollow: %d %s", w.Code, w.Body)
		}
	}
	if got := decodeJSON[counts](t, h.do(req{method: "GET", path: "/v1/users/karl"})); got.Followers != 0 {
		t.Errorf("karl after unfollow: %+v", got)
	}

	wantProblem(t, h.do(req{method: "POST", path: "/v1/users/judy/follow", token: judy.AccessToken}), http.StatusBadRequest, errs.ValidationFailed)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/users/nobody/follow", token: judy.AccessToken}), http.StatusNotFound, errs.NotFound)
}

func TestFollowerListsPageUntilNextCursorIsNull(t *testing.T) {
	h := newHarness(t)
	h.signup("star")
	var fans []string
	for _, name := range []string{"fan_a", "fan_b", "fan_c", "fan_d", "fan_e"} {
		s := h.signup(name)
		if w := h.do(req{method: "POST", path: "/v1/users/star/follow", token: s.AccessToken}); w.Code != http.StatusNoContent {
			t.Fatalf("follow: %d %s", w.Code, w.Body)
		}
		fans = append([]string{name}, fans...) // newest first
	}
	type page struct {
		Items []struct {
			Username string `json:"username"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	var got []string
	path := "/v1/users/star/followers?limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more pages than followers")
		}
		w := h.do(req{method: "GET", path: path})
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		p := decodeJSON[page](t, w)
		for _, it := range p.Items {
			got = append(got, it.Username)
		}
		if p.NextCursor == nil {
			if !strings.Contains(w.Body.String(), `"next_cursor":null`) {
				t.Errorf("last page does not say next_cursor null: %s", w.Body)
			}
			break
		}
		path = "/v1/users/star/followers?limit=2&cursor=" + *p.NextCursor
	}
	if !slices.Equal(got, fans) {
		t.Errorf("followers %q, want %q", got, fans)
	}

	w := h.do(req{method: "GET", path: "/v1/users/fan_a/following"})
	if p := decodeJSON[page](t, w); len(p.Items) != 1 || p.Items[0].Username != "star" || p.NextCursor != nil {
		t.Errorf("fan_a following: %s", w.Body)
	}
	w = h.do(req{method: "GET", path: "/v1/users/fan_a/followers"})
	if !strings.Contains(w.Body.String(), `"items":[]`) {
		t.Errorf("an empty list is not []: %s", w.Body)
	}
}

func TestListQueryIsValidatedWithPointersToTheParameters(t *testing.T) {
	h := newHarness(t)
	h.signup("lena")
	cases := map[string][]string{
		"limit=0":                            {"/limit"},
		"limit=101":                          {"/limit"},
		"limit=ten":                          {"/limit"},
		"limit=1&limit=2":                    {"/limit"},
		"cursor=a%20b":                       {"/cursor"},
		"cursor=" + strings.Repeat("c", 513): {"/cursor"},
		"cursor=%2F&limit=-1":                {"/cursor", "/limit"},
		"limit=%zz":                          {""},
	}
	for q, want := range cases {
		w := h.do(req{method: "GET", path: "/v1/users/lena/followers?" + q})
		p := wantProblem(t, w, http.StatusBadRequest, errs.ValidationFailed)
		if got := pointers(p); !slices.Equal(got, want) {
			t.Errorf("?%s: pointers %q, want %q", q, got, want)
		}
	}
	if n := h.users.callCount("ListFollowers"); n != 0 {
		t.Errorf("user-service called %d times", n)
	}
}

func TestUserServiceErrorsKeepTheirCode(t *testing.T) {
	h := newHarness(t)
	h.users.setFail("GetUser", errs.New(errs.Unavailable, "database down"))
	w := h.do(req{method: "GET", path: "/v1/users/someone"})
	p := wantProblem(t, w, http.StatusServiceUnavailable, errs.Unavailable)
	if strings.Contains(p.Detail, "database") {
		t.Errorf("a 5xx leaks its message: %q", p.Detail)
	}
	h.users.setFail("SignUp", errs.Validation("The password is too common.", errs.Field("/password", "is too common")))
	w = h.do(req{method: "POST", path: "/v1/auth/signup", body: `{"username":"mallory","email":"m@example.com","password":"password123"}`})
	if p := wantProblem(t, w, http.StatusBadRequest, errs.ValidationFailed); !slices.Equal(pointers(p), []string{"/password"}) {
		t.Errorf("pointers %q", pointers(p))
	}
}
