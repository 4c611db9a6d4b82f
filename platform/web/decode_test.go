package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/platform/errs"
)

type author struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
}

type Embedded struct {
	Promoted string `json:"promoted"`
}

type createPost struct {
	Embedded
	Title   string            `json:"title"`
	Tags    []string          `json:"tags"`
	Author  *author           `json:"author"`
	Counts  map[string]int32  `json:"counts"`
	ByID    map[int]string    `json:"by_id"`
	At      time.Time         `json:"at"`
	Score   float32           `json:"score"`
	Limit   uint8             `json:"limit"`
	Quoted  int64             `json:"quoted,string"`
	Extra   json.RawMessage   `json:"extra"`
	Any     any               `json:"any"`
	Slash   string            `json:"a/b~c"`
	Pair    [2]int            `json:"pair"`
	Blob    []byte            `json:"blob"`
	Num     json.Number       `json:"num"`
	Hidden  string            `json:"-"`
	private string            // not a member: unexported
	Nested  map[string]author `json:"nested"`
}

func newJSONRequest(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/posts", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func decode(t *testing.T, r *http.Request, dst any) *errs.Error {
	t.Helper()
	err := DecodeJSON(httptest.NewRecorder(), r, dst)
	if err == nil {
		return nil
	}
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("DecodeJSON error %T %v is not an *errs.Error", err, err)
	}
	return e
}

func pointers(e *errs.Error) []string {
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Pointer)
	}
	return out
}

func TestDecodeJSONAcceptsAValidBody(t *testing.T) {
	var p createPost
	body := `{"title":"hi","tags":["a","b"],"author":{"name":"ann","verified":true},"promoted":"p",
		"counts":{"x":1},"by_id":{"7":"seven"},"at":"2025-01-02T03:04:05Z","score":1.5,"limit":255,
		"quoted":"42","extra":{"k":[1]},"any":[1,"x"],"a/b~c":"s","pair":[1,2],"blob":"aGk=","num":1e3,
		"TITLE":"case-insensitive wins last"}` + "\n\t "
	if e := decode(t, newJSONRequest(body), &p); e != nil {
		t.Fatalf("valid body rejected: %v", e)
	}
	if p.Title != "case-insensitive wins last" || p.private != "" || p.Author.Name != "ann" || p.Quoted != 42 || p.Promoted != "p" || p.ByID[7] != "seven" {
		t.Errorf("decoded %+v", p)
	}
}

func TestDecodeJSONRejections(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		wantPointers []string
		wantDetail   string // substring of the first violation's detail
	}{
		{"unknown top-level field", `{"title":"x","titel":"y"}`, []string{"/titel"}, "unknown field"},
		{"unknown nested field", `{"author":{"name":"a","nick":"b"}}`, []string{"/author/nick"}, "unknown field"},
		{"unknown field in map value", `{"nested":{"k":{"name":"a","bogus":1}}}`, []string{"/nested/k/bogus"}, "unknown field"},
		{"hidden field is unknown", `{"Hidden":"x"}`, []string{"/Hidden"}, "unknown field"},
		{"unexported field is unknown", `{"private":"x"}`, []string{"/private"}, "unknown field"},
		{"wrong type at top level", `{"title":5}`, []string{"/title"}, "must be a string"},
		{"wrong type in array", `{"tags":["a",2,"c"]}`, []string{"/tags/1"}, "must be a string"},
		{"wrong type nested", `{"author":{"verified":"yes"}}`, []string{"/author/verified"}, "must be a boolean"},
		{"object instead of array", `{"tags":{"a":1}}`, []string{"/tags"}, "must be an array"},
		{"fraction into integer", `{"counts":{"x":1.5}}`, []string{"/counts/x"}, "must be an integer"},
		{"integer out of range", `{"limit":256}`, []string{"/limit"}, "between 0 and 255"},
		{"float out of range", `{"score":1e300}`, []string{"/score"}, "out of range"},
		{"bad map key", `{"by_id":{"seven":"x"}}`, []string{"/by_id/seven"}, "invalid key"},
		{"bad time", `{"at":"yesterday"}`, []string{"/at"}, "invalid value"},
		{"bad base64", `{"blob":"!!"}`, []string{"/blob"}, "base64"},
		{"bad number string", `{"num":"abc"}`, []string{"/num"}, "must be a number"},
		{"pointer escaping", `{"a/b~c":1}`, []string{"/a~1b~0c"}, "must be a string"},
		{"array element beyond a fixed array is ignored", `{"pair":[1,2,"x"],"title":1}`, []string{"/title"}, "must be a string"},
		{"root is not an object", `[1,2]`, []string{""}, "must be an object"},
		{"several problems in document order", `{"titel":1,"tags":[1],"author":{"x":1}}`, []string{"/titel", "/tags/0", "/author/x"}, "unknown field"},
		{"empty body", ``, []string{""}, "required"},
		{"whitespace body", " \n ", []string{""}, "required"},
		{"trailing garbage", `{"title":"x"} x`, []string{""}, "unexpected data"},
		{"two values", `{"title":"x"}{"title":"y"}`, []string{""}, "unexpected data"},
		{"syntax error", `{"title":}`, []string{""}, "invalid character"},
		{"truncated", `{"title":"x"`, []string{""}, "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p createPost
			e := decode(t, newJSONRequest(tt.body), &p)
			if e == nil {
				t.Fatal("accepted")
			}
			if e.Code != errs.ValidationFailed {
				t.Fatalf("code = %q, want validation_failed (%v)", e.Code, e)
			}
			if got := pointers(e); !slices.Equal(got, tt.wantPointers) {
				t.Errorf("pointers = %q, want %q (%v)", got, tt.wantPointers, e.Fields)
			}
			if len(e.Fields) > 0 && !strings.Contains(e.Fields[0].Detail, tt.wantDetail) {
				t.Errorf("detail = %q, want it to mention %q", e.Fields[0].Detail, tt.wantDetail)
			}
		})
	}
}

func TestDecodeJSONRequiresJSONContentType(t *testing.T) {
	for _, ct := range []string{"", "text/plain", "application/jsonx", "multipart/form-data"} {
		r := newJSONRequest(`{}`)
		r.Header.Set("Content-Type", ct)
		if e := decode(t, r, &createPost{}); e == nil || e.Code != errs.ValidationFailed {
			t.Errorf("Content-Type %q: got %v, want validation_failed", ct, e)
		}
	}
	r := newJSONRequest(`{}`)
	r.Header.Set("Content-Type", "Application/JSON; charset=utf-8")
	if e := decode(t, r, &createPost{}); e != nil {
		t.Errorf("Content-Type with parameters rejected: %v", e)
	}
}

func TestDecodeJSONRejectsOversizeBodies(t *testing.T) {
	big := `{"title":"` + strings.Repeat("x", MaxJSONBody) + `"}`

	// Declared length over the limit: rejected before reading.
	if e := decode(t, newJSONRequest(big), &createPost{}); e == nil || e.Code != errs.PayloadTooLarge {
		t.Errorf("declared oversize: got %v, want payload_too_large", e)
	}
	// Unknown length (chunked): rejected while reading.
	r := newJSONRequest(big)
	r.ContentLength = -1
	if e := decode(t, r, &createPost{}); e == nil || e.Code != errs.PayloadTooLarge {
		t.Errorf("streamed oversize: got %v, want payload_too_large", e)
	}
	// BodyLimit's smaller limit applies through DecodeJSON.
	rec := httptest.NewRecorder()
	var got *errs.Error
	BodyLimit(16)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = errors.AsType[*errs.Error](DecodeJSON(w, r, &createPost{}))
	})).ServeHTTP(rec, func() *http.Request {
		r := newJSONRequest(`{"title":"more than sixteen bytes"}`)
		r.ContentLength = -1
		return r
	}())
	if got == nil || got.Code != errs.PayloadTooLarge || !strings.Contains(got.Message, "16 bytes") {
		t.Errorf("under BodyLimit(16): got %v, want payload_too_large naming 16 bytes", got)
	}
}

func TestDecodeJSONIntoANonPointerIsAServerBug(t *testing.T) {
	if e := decode(t, newJSONRequest(`{}`), createPost{}); e == nil || e.Code != errs.Internal {
		t.Errorf("got %v, want internal", e)
	}
}

// FuzzDecodeJSON: whatever the body, DecodeJSON does not panic, rejects only
// with a 4xx validation_failed/payload_too_large carrying at least one
// well-formed pointer, and accepts only well-formed JSON.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{"title":"x"}`, `{"titel":"x"}`, `{"tags":["a",1]}`,
		`{"author":{"name":1,"zzz":2}}`, `{"at":"nope"}`, `{"limit":-1}`, `{"by_id":{"x":"y"}}`,
		`{"quoted":"x"}`, `{"quoted":5}`, `{"blob":"***"}`, `{"num":"1e5"}`, `{"pair":[1,2,3]}`,
		`{"title":"x"} trailing`, `{"title":`, `"\ud800"`, `{"a/b~c":null}`, `{"nested":{"k":[]}}`,
		`{"any":{"deep":[[[{"x":1}]]]}}`, `{"extra":nul}`, "\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var p createPost
		err := DecodeJSON(httptest.NewRecorder(), newJSONRequest(body), &p)
		if err == nil {
			if !json.Valid([]byte(strings.TrimSpace(body))) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		e, ok := errors.AsType[*errs.Error](err)
		if !ok {
			t.Fatalf("error %T %v is not an *errs.Error", err, err)
		}
		if e.Code != errs.ValidationFailed && e.Code != errs.PayloadTooLarge {
			t.Fatalf("code %q for body %q", e.Code, body)
		}
		if s := e.Code.HTTPStatus(); s < 400 || s > 499 {
			t.Fatalf("status %d for body %q", s, body)
		}
		if e.Code == errs.ValidationFailed && len(e.Fields) == 0 {
			t.Fatalf("no field violation for body %q: %v", body, e)
		}
		for _, fv := range e.Fields {
			if fv.Pointer != "" && !strings.HasPrefix(fv.Pointer, "/") {
				t.Fatalf("malformed pointer %q for body %q", fv.Pointer, body)
			}
		}
		// A well-formed document that does not fit must be located by the
		// walk, not by the fallback.
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		raw := dec.Decode(&createPost{})
		var tErr *json.UnmarshalTypeError
		if raw != nil && (errors.As(raw, &tErr) || strings.HasPrefix(raw.Error(), "json: unknown field")) {
			if len(locateViolations([]byte(body), reflect.TypeFor[*createPost]())) == 0 {
				t.Fatalf("walk found nothing for body %q (decoder said %v)", body, raw)
			}
		}
	})
}
