package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/piazza-social/piazza/services/gateway/gatewaytest"
)

var (
	contractOnce sync.Once
	contract     *gatewaytest.Contract
)

// validateResponse holds every exchange to the OpenAPI document.
func validateResponse(t *testing.T, req *http.Request, reqBody []byte, r response) {
	t.Helper()
	contractOnce.Do(func() { contract = gatewaytest.LoadContract(t) })
	contract.Check(t, req, reqBody, gatewaytest.Response{Status: r.Status, Header: r.Header, Body: r.Body})
}

// client speaks the public API of one gateway.
type client struct {
	t    *testing.T
	base string // http://host:port
	http *http.Client
}

func newClient(t *testing.T, addr string) *client {
	return &client{t: t, base: "http://" + addr, http: &http.Client{}}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("status %d, body is not the expected JSON: %v\n%s", r.Status, err, r.Body)
	}
}

// Code returns the problem code of an error response ("" for a success).
func (r response) Code(t *testing.T) string {
	t.Helper()
	if r.Status < 400 {
		return ""
	}
	var p struct {
		Code    string `json:"code"`
		TraceID string `json:"trace_id"`
	}
	r.JSON(t, &p)
	if p.TraceID == "" {
		t.Errorf("problem without trace_id: %s", r.Body)
	}
	return p.Code
}

// do sends a request with an optional bearer token and JSON body; every response is checked
// against the OpenAPI document.
func (c *client) do(method, path, token string, body any) response {
	c.t.Helper()
	var rd io.Reader
	var reqBody []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd, reqBody = bytes.NewReader(b), b
	}
	req, err := http.NewRequestWithContext(ctx(c.t), method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	validateResponse(c.t, req, reqBody, r)
	return r
}

// expect fails the test unless r has the given status (and problem code, for errors).
func expect(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.Status, status, r.Body)
	}
	if code != "" {
		if got := r.Code(t); got != code {
			t.Fatalf("%s: code %q, want %q\n%s", what, got, code, r.Body)
		}
	}
}
