package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

type authResponse struct {
	User         user   `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type user struct {
	ID             string `json:"id"`
	Username       string `json:"username"`
	DisplayName    string `json:"display_name"`
	Bio            string `json:"bio"`
	FollowersCount int64  `json:"followers_count"`
	FollowingCount int64  `json:"following_count"`
	Email          string `json:"email"`
}

type userPage struct {
	Items      []user  `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// signup creates an account and returns its tokens.
func signup(t *testing.T, c *client, username string) authResponse {
	t.Helper()
	r := c.do(http.MethodPost, "/v1/auth/signup", "", map[string]string{
		"username": username, "email": username + "@example.test", "password": "correct horse battery " + username,
	})
	expect(t, "signup "+username, r, http.StatusCreated, "")
	var a authResponse
	r.JSON(t, &a)
	if a.AccessToken == "" || a.RefreshToken == "" || a.TokenType != "Bearer" || a.ExpiresIn <= 0 || a.User.Username != username {
		t.Fatalf("signup response incomplete: %+v", a)
	}
	return a
}

// listAll walks every page of a follow list with the given page size.
func listAll(t *testing.T, c *client, path, token string, limit int) []string {
	t.Helper()
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := c.do(http.MethodGet, path+"?"+q.Encode(), token, nil)
		expect(t, "list "+path, r, http.StatusOK, "")
		var p userPage
		r.JSON(t, &p)
		if len(p.Items) > limit {
			t.Fatalf("page of %d items, limit %d", len(p.Items), limit)
		}
		for _, u := range p.Items {
			names = append(names, u.Username)
		}
		if p.NextCursor == nil || *p.NextCursor == "" {
			return names
		}
		cursor = *p.NextCursor
	}
}

// identityScenario is the life of a session and a follow graph, as a client sees it, against
// the gateway at gw (and optionally a second gateway gw2 of the same deployment).
func identityScenario(t *testing.T, gw, gw2 *client, suffix string) {
	alice, bob := "alice_"+suffix, "bob_"+suffix

	// Sign up, log in, see yourself.
	signup(t, gw, alice)
	r := gw.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": alice, "password": "wrong password!"})
	expect(t, "wrong password", r, http.StatusUnauthorized, "unauthenticated")
	r = gw.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": "nobody_" + suffix, "password": "wrong password!"})
	expect(t, "unknown user", r, http.StatusUnauthorized, "unauthenticated")
	r = gw.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": alice + "@example.test", "password": "correct horse battery " + alice})
	expect(t, "login by email", r, http.StatusOK, "")
	var login authResponse
	r.JSON(t, &login)

	r = gw2.do(http.MethodGet, "/v1/me", login.AccessToken, nil)
	expect(t, "me", r, http.StatusOK, "")
	var me user
	r.JSON(t, &me)
	if me.Username != alice || me.Email != alice+"@example.test" {
		t.Fatalf("me = %+v", me)
	}
	expect(t, "me without token", gw.do(http.MethodGet, "/v1/me", "", nil), http.StatusUnauthorized, "token_missing")
	expect(t, "me with garbage", gw.do(http.MethodGet, "/v1/me", "not.a.jwt", nil), http.StatusUnauthorized, "token_invalid")

	r = gw.do(http.MethodPatch, "/v1/me", login.AccessToken, map[string]string{"display_name": "Alice", "bio": "hello"})
	expect(t, "patch me", r, http.StatusOK, "")
	r = gw.do(http.MethodPatch, "/v1/me", login.AccessToken, map[string]any{"display_name": 7})
	expect(t, "patch me with a wrong type", r, http.StatusBadRequest, "validation_failed")

	// Refresh rotates; presenting the spent token again revokes the whole session.
	r = gw.do(http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": login.RefreshToken})
	expect(t, "refresh", r, http.StatusOK, "")
	var refreshed authResponse
	r.JSON(t, &refreshed)
	if refreshed.RefreshToken == login.RefreshToken {
		t.Fatal("refresh token was not rotated")
	}
	expect(t, "new access token works", gw2.do(http.MethodGet, "/v1/me", refreshed.AccessToken, nil), http.StatusOK, "")

	r = gw2.do(http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": login.RefreshToken})
	expect(t, "reuse of a spent refresh token", r, http.StatusUnauthorized, "token_invalid")
	expect(t, "session revoked: newest access token", gw.do(http.MethodGet, "/v1/me", refreshed.AccessToken, nil), http.StatusUnauthorized, "token_invalid")
	r = gw.do(http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": refreshed.RefreshToken})
	expect(t, "session revoked: newest refresh token", r, http.StatusUnauthorized, "token_invalid")

	// Log in again: a new session works; logout ends it.
	r = gw.do(http.MethodPost, "/v1/auth/login", "", map[string]string{"login": alice, "password": "correct horse battery " + alice})
	expect(t, "login again", r, http.StatusOK, "")
	var again authResponse
	r.JSON(t, &again)
	expect(t, "new session works", gw.do(http.MethodGet, "/v1/me", again.AccessToken, nil), http.StatusOK, "")

	// Follow graph with pagination.
	signup(t, gw2, bob)
	var fans []authResponse
	var fanNames []string
	for i := range 5 {
		name := fmt.Sprintf("fan%d_%s", i, suffix)
		fans = append(fans, signup(t, gw, name))
		fanNames = append(fanNames, name)
	}
	for _, f := range fans {
		expect(t, "follow", gw.do(http.MethodPost, "/v1/users/"+bob+"/follow", f.AccessToken, nil), http.StatusNoContent, "")
	}
	// Idempotent: following twice changes nothing.
	expect(t, "follow again", gw2.do(http.MethodPost, "/v1/users/"+bob+"/follow", fans[0].AccessToken, nil), http.StatusNoContent, "")
	expect(t, "follow yourself", gw.do(http.MethodPost, "/v1/users/"+alice+"/follow", again.AccessToken, nil), http.StatusBadRequest, "validation_failed")
	expect(t, "follow nobody", gw.do(http.MethodPost, "/v1/users/nobody_"+suffix+"/follow", again.AccessToken, nil), http.StatusNotFound, "not_found")
	expect(t, "follow alice", gw.do(http.MethodPost, "/v1/users/"+bob+"/follow", again.AccessToken, nil), http.StatusNoContent, "")

	r = gw.do(http.MethodGet, "/v1/users/"+bob, "", nil)
	expect(t, "profile", r, http.StatusOK, "")
	var profile user
	r.JSON(t, &profile)
	if profile.FollowersCount != 6 || profile.FollowingCount != 0 || profile.Email != "" {
		t.Fatalf("bob's profile %+v, want 6 followers, no email", profile)
	}

	followers := listAll(t, gw, "/v1/users/"+bob+"/followers", "", 2)
	want := []string{alice}
	for i := len(fanNames) - 1; i >= 0; i-- {
		want = append(want, fanNames[i])
	}
	if !slices.Equal(followers, want) {
		t.Fatalf("followers newest first = %q, want %q", followers, want)
	}
	following := listAll(t, gw2, "/v1/users/"+fanNames[0]+"/following", "", 2)
	if !slices.Equal(following, []string{bob}) {
		t.Fatalf("following = %q", following)
	}

	// Unfollow is idempotent and counts follow.
	expect(t, "unfollow", gw.do(http.MethodDelete, "/v1/users/"+bob+"/follow", fans[0].AccessToken, nil), http.StatusNoContent, "")
	expect(t, "unfollow again", gw.do(http.MethodDelete, "/v1/users/"+bob+"/follow", fans[0].AccessToken, nil), http.StatusNoContent, "")
	r = gw2.do(http.MethodGet, "/v1/users/"+bob, "", nil)
	r.JSON(t, &profile)
	if profile.FollowersCount != 5 {
		t.Fatalf("followers after unfollow = %d, want 5", profile.FollowersCount)
	}
	expect(t, "bad cursor", gw.do(http.MethodGet, "/v1/users/"+bob+"/followers?cursor=%21%21", "", nil), http.StatusBadRequest, "validation_failed")
	expect(t, "bad limit", gw.do(http.MethodGet, "/v1/users/"+bob+"/followers?limit=1000", "", nil), http.StatusBadRequest, "validation_failed")

	// Logout revokes the session.
	expect(t, "logout", gw.do(http.MethodPost, "/v1/auth/logout", "", map[string]string{"refresh_token": again.RefreshToken}), http.StatusNoContent, "")
	expect(t, "after logout", gw2.do(http.MethodGet, "/v1/me", again.AccessToken, nil), http.StatusUnauthorized, "token_invalid")
}
