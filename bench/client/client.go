// Package client speaks Piazza's public HTTP API for the load tool: sign-up, follows, posts,
// timelines, conversations and messages. It reads every response body to the end, so
// connections are reused, and decodes only what a scenario needs next.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one gateway. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// New returns a client of the gateway at baseURL (http://host:port) using hc.
func New(baseURL string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// NewHTTPClient returns an HTTP client for load: up to maxConns keep-alive connections to one
// host, so that a run at a steady rate reuses its connections instead of opening new ones.
func NewHTTPClient(maxConns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        maxConns,
			MaxIdleConnsPerHost: maxConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// BaseURL is the gateway's URL.
func (c *Client) BaseURL() string { return c.base }

// EventsURL is the URL of the gateway's event stream.
func (c *Client) EventsURL() string { return c.base + "/v1/events" }

// StatusError is an unexpected answer: its status and problem code.
type StatusError struct {
	Method, Path string
	Status       int
	Code         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Code)
}

// Unavailable reports whether err says the route does not exist or is not served (404 with
// no specific resource, 405, 501, 503): the deployment lacks the feature.
func Unavailable(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusServiceUnavailable:
		return true
	}
	return false
}

// Account is a signed-up user.
type Account struct {
	ID       string
	Username string
	Token    string
}

// Signup creates an account and returns it with its access token.
func (c *Client) Signup(ctx context.Context, username, password string) (Account, error) {
	var out struct {
		User struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"user"`
		AccessToken string `json:"access_token"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/auth/signup", "/v1/auth/signup", "", map[string]string{
		"username": username, "email": username + "@bench.invalid", "password": password,
	}, http.StatusCreated, &out)
	if err != nil {
		return Account{}, err
	}
	return Account{ID: out.User.ID, Username: out.User.Username, Token: out.AccessToken}, nil
}

// Follow makes the token's user follow username.
func (c *Client) Follow(ctx context.Context, token, username string) error {
	return c.do(ctx, http.MethodPost, "/v1/users/{username}/follow", "/v1/users/"+url.PathEscape(username)+"/follow", token, nil, http.StatusNoContent, nil)
}

// CreatePost publishes text and returns the post's id.
func (c *Client) CreatePost(ctx context.Context, token, text string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/posts", "/v1/posts", token, map[string]string{"text": text}, http.StatusCreated, &out)
	return out.ID, err
}

// HomeTimeline reads the first page (limit posts) of the token's home timeline.
func (c *Client) HomeTimeline(ctx context.Context, token string, limit int) error {
	return c.do(ctx, http.MethodGet, "/v1/timeline", fmt.Sprintf("/v1/timeline?limit=%d", limit), token, nil, http.StatusOK, nil)
}

// UserPosts reads the first page (limit posts) of username's posts.
func (c *Client) UserPosts(ctx context.Context, token, username string, limit int) error {
	return c.do(ctx, http.MethodGet, "/v1/users/{username}/posts", fmt.Sprintf("/v1/users/%s/posts?limit=%d", url.PathEscape(username), limit), token, nil, http.StatusOK, nil)
}

// LastSeq returns the sequence number of the token's user's newest notification.
func (c *Client) LastSeq(ctx context.Context, token string) (int64, error) {
	var out struct {
		LastSeq int64 `json:"last_seq"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/notifications/unread_count", "/v1/notifications/unread_count", token, nil, http.StatusOK, &out)
	return out.LastSeq, err
}

// CreateConversation opens (or finds) the token's user's conversation with usernames and
// returns its id.
func (c *Client) CreateConversation(ctx context.Context, token string, usernames []string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/conversations", "/v1/conversations", token, map[string][]string{"participants": usernames}, 0, &out)
	if err == nil && out.ID == "" {
		err = errors.New("POST /v1/conversations: no id in the answer")
	}
	return out.ID, err
}

// SendMessage sends text to a conversation and returns the message's id.
func (c *Client) SendMessage(ctx context.Context, token, conversationID, text, clientMsgID string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/conversations/{id}/messages", "/v1/conversations/"+url.PathEscape(conversationID)+"/messages", token,
		map[string]string{"text": text, "client_msg_id": clientMsgID}, 0, &out)
	return out.ID, err
}

// do sends one request and decodes a JSON answer into out (when not nil). want is the
// expected status; 0 accepts any 2xx. route names the path in errors without its ids, so that
// errors of one kind count as one.
func (c *Client) do(ctx context.Context, method, route, path, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL and its ids
		}
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == want || want == 0 && resp.StatusCode/100 == 2
	if !ok {
		var p struct {
			Code string `json:"code"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(b, &p)
		_, _ = io.Copy(io.Discard, resp.Body)
		return &StatusError{Method: method, Path: route, Status: resp.StatusCode, Code: p.Code}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, route, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
