// Package gatewaytest holds test helpers for the public HTTP API: a [Contract] that checks
// requests and responses against the OpenAPI document (api/openapi.json), for the gateway's own
// handler tests and for end-to-end tests that talk to a running gateway.
package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/piazza-social/piazza/api"
)

// Contract is the OpenAPI document of the public API, ready to check exchanges against.
// OpenAPI 3.1 schemas are checked as JSON Schema 2020-12 (kin-openapi switches to its 2020-12
// validator for 3.1 documents).
type Contract struct {
	doc     *openapi3.T
	router  routers.Router
	problem *openapi3.SchemaRef
}

// LoadContract loads and validates api/openapi.json; an invalid document fails t.
func LoadContract(t testing.TB) *Contract {
	t.Helper()
	c, err := loadContract(t.Context())
	if err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	return c
}

func loadContract(ctx context.Context) (*Contract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, err
	}
	// The document's server is the embedded default's address; tests reach the API at other
	// addresses (httptest, random ports). Matching on the path alone is what is meant.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	problem := doc.Components.Schemas["Problem"]
	if problem == nil {
		return nil, errors.New("no Problem schema")
	}
	return &Contract{doc: doc, router: router, problem: problem}, nil
}

// Response is what a server answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Check fails t unless resp is what the document says req may get: a documented status of the
// operation, with the documented media type, headers and body schema. A request that matches no
// documented operation must get a 404 or 405 problem. When the response is a success and
// reqBody is not nil, the request itself must also be valid by the document: the server must
// not accept what the document rejects.
func (c *Contract) Check(t testing.TB, req *http.Request, reqBody []byte, resp Response) {
	t.Helper()
	if err := c.check(req, reqBody, resp); err != nil {
		t.Errorf("%s %s → %d: does not match api/openapi.json: %v\nresponse body: %s", req.Method, req.URL, resp.Status, err, truncate(resp.Body))
	}
}

// CheckHTTP is Check for a response from a real server; it reads and restores resp.Body.
func (c *Contract) CheckHTTP(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.Check(t, req, reqBody, Response{Status: resp.StatusCode, Header: resp.Header, Body: body})
}

// Handler wraps h so that every exchange it serves is checked with [Contract.Check].
func (c *Contract) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil && r.Body != http.NoBody {
			var err error
			if reqBody, err = io.ReadAll(r.Body); err != nil {
				t.Errorf("read request body: %v", err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		c.Check(t, r, reqBody, Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()})
	})
}

// Valid reports whether req (with body) is a valid request by the document; the error says why
// not.
func (c *Contract) Valid(req *http.Request, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return err
	}
	return c.validRequest(req, body, route, params)
}

func (c *Contract) validRequest(req *http.Request, body []byte, route *routers.Route, params map[string]string) error {
	// kin-openapi's JSON body decoder stops after the first value; a body is one JSON text
	// (RFC 8259) or it is not JSON.
	if len(body) > 0 && strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") && !json.Valid(body) {
		return errors.New("the request body is not one valid JSON value")
	}
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			// Whether the token is good is the server's business; the document only says
			// which operations need one.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	})
}

func (c *Contract) check(req *http.Request, reqBody []byte, resp Response) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return c.checkUnrouted(resp, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.Status,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(resp.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	if resp.Status >= 200 && resp.Status < 300 && reqBody != nil {
		if err := c.validRequest(req, reqBody, route, params); err != nil {
			return errors.Join(errors.New("the server accepted a request the document rejects"), err)
		}
	}
	return nil
}

// checkUnrouted checks the answer to a request for no documented operation: the router's 404 or
// 405 problem.
func (c *Contract) checkUnrouted(resp Response, routeErr error) error {
	want := http.StatusNotFound
	if errors.Is(routeErr, routers.ErrMethodNotAllowed) {
		want = http.StatusMethodNotAllowed
	}
	if resp.Status != want {
		return errors.Join(errors.New("undocumented operation"), routeErr)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return errors.New("content type " + ct + ", want application/problem+json")
	}
	var v any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		return err
	}
	return c.problem.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())
}

func truncate(b []byte) string {
	const n = 2000
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
