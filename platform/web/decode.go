package web

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/piazza-social/piazza/platform/errs"
)

// MaxJSONBody is the largest body [DecodeJSON] reads.
const MaxJSONBody = 1 << 20

// maxViolations bounds the field violations reported for one body.
const maxViolations = 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// DecodeJSON decodes the request body, which must be exactly one JSON value
// of at most [MaxJSONBody] bytes (less under [BodyLimit]) with Content-Type
// application/json, into dst (a non-nil pointer). Unknown object members
// are rejected.
//
// Every rejection of client input is an *errs.Error with a 4xx code:
// payload_too_large for an oversize body, validation_failed otherwise, with
// at least one field violation whose JSON pointer locates the problem (""
// for the body as a whole): "/author/name" for an unknown or mistyped
// member, "/tags/3" for an array element. Only a dst that cannot be
// decoded into (a programming error) yields an internal error. On error
// dst may be partly filled.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return errs.Validation("The request body must be sent with Content-Type: application/json.",
			errs.Field("", "unsupported content type"))
	}
	if r.ContentLength > MaxJSONBody {
		return tooLarge(MaxJSONBody)
	}
	if r.Body == nil {
		return emptyBody()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		// Do not keep unusually large buffers alive in the pool.
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxJSONBody)); err != nil {
		if mb, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(mb.Limit)
		}
		return errs.Wrap(err, errs.ValidationFailed, "The request body could not be read.")
	}
	return decodeJSONBytes(buf.Bytes(), dst)
}

func emptyBody() *errs.Error {
	return errs.Validation("The request body is empty.", errs.Field("", "a JSON value is required"))
}

// decodeJSONBytes is DecodeJSON after the transport concerns.
func decodeJSONBytes(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
			return errs.Validation("The request body must hold a single JSON value.",
				errs.Field("", fmt.Sprintf("unexpected data after the JSON value at byte %d", dec.InputOffset())))
		}
		return nil
	}

	var (
		syntaxErr  *json.SyntaxError
		typeErr    *json.UnmarshalTypeError
		invalidErr *json.InvalidUnmarshalError
	)
	switch {
	case errors.Is(err, io.EOF):
		return emptyBody()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Validation("The request body is not valid JSON.", errs.Field("", "unexpected end of JSON input"))
	case errors.As(err, &syntaxErr):
		return errs.Validation("The request body is not valid JSON.",
			errs.Field("", fmt.Sprintf("%s (at byte %d)", syntaxErr.Error(), syntaxErr.Offset)))
	case errors.As(err, &invalidErr):
		return errs.Wrap(err, errs.Internal, "internal error")
	}
	// The JSON is well formed but does not fit dst: an unknown member, a
	// wrong type, or a field type's own UnmarshalJSON/UnmarshalText
	// refusing the value. encoding/json does not say where (its paths
	// omit array indices and mix Go and JSON names), so walk the document
	// against dst's type to find every offending value.
	if v := locateViolations(data, reflect.TypeOf(dst)); len(v) > 0 {
		e := errs.Wrap(err, errs.ValidationFailed, "The request body is invalid.")
		e.Fields = v
		return e
	}
	// The walk found nothing it recognises; fall back on what
	// encoding/json says.
	pointer := ""
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		pointer = "/" + strings.ReplaceAll(escapePointer(typeErr.Field), ".", "/")
	} else if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, qErr := strconv.Unquote(name); qErr == nil {
			pointer = "/" + escapePointer(unq)
		}
	}
	e := errs.Wrap(err, errs.ValidationFailed, "The request body is invalid.")
	e.Fields = []errs.FieldViolation{errs.Field(pointer, "invalid value")}
	return e
}

func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// escapePointer escapes one JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonNumberType      = reflect.TypeFor[json.Number]()
)

// locateViolations re-reads a well-formed document alongside typ (the type
// passed to json.Decode) and reports, in document order, the values that
// encoding/json rejects: unknown members, kind mismatches, numbers out of
// range, and values that a field type's own unmarshaler refuses.
func locateViolations(data []byte, typ reflect.Type) (out []errs.FieldViolation) {
	if typ == nil || typ.Kind() != reflect.Pointer {
		return nil
	}
	l := &locator{dec: json.NewDecoder(bytes.NewReader(data))}
	l.dec.UseNumber()
	defer func() {
		// errLocatorStop ends the walk early: enough violations, or a token
		// error (which cannot happen on a document already found well
		// formed). Report what was found so far.
		if v := recover(); v != nil && v != errLocatorStop {
			panic(v)
		}
		out = l.out
	}()
	l.value(typ.Elem(), "", false)
	return l.out
}

// errLocatorStop unwinds the walk once enough violations are found or the
// token stream fails.
var errLocatorStop = errors.New("stop")

type locator struct {
	dec *json.Decoder
	out []errs.FieldViolation
}

func (l *locator) add(pointer, detail string) {
	l.out = append(l.out, errs.Field(pointer, detail))
	if len(l.out) >= maxViolations {
		panic(errLocatorStop)
	}
}

func (l *locator) token() json.Token {
	t, err := l.dec.Token()
	if err != nil {
		panic(errLocatorStop)
	}
	return t
}

// skip consumes the rest of a value whose first token was t.
func (l *locator) skip(t json.Token) {
	if d, ok := t.(json.Delim); !ok || (d != '{' && d != '[') {
		return
	}
	for depth := 1; depth > 0; {
		if d, ok := l.token().(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
	}
}

// value checks the next value of the document against t. quoted is the
// ",string" tag option: the scalar may come as a JSON string.
func (l *locator) value(t reflect.Type, ptr string, quoted bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A type with its own unmarshaler decides for itself: ask it.
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		var raw json.RawMessage
		if err := l.dec.Decode(&raw); err != nil {
			panic(errLocatorStop)
		}
		if string(raw) == "null" {
			return
		}
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			l.add(ptr, unmarshalerDetail(err))
		}
		return
	}
	tok := l.token()
	if quoted && isScalarKind(t.Kind()) && tok != nil {
		l.checkQuoted(t, ptr, tok)
		return
	}
	l.check(t, ptr, tok)
}

func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// checkQuoted checks a scalar field with the ",string" option, whose value
// is JSON text inside a JSON string.
func (l *locator) checkQuoted(t reflect.Type, ptr string, tok json.Token) {
	inner, ok := tok.(string)
	if !ok {
		l.mismatch(tok, ptr, "a string-encoded value")
		return
	}
	if inner == "null" {
		return
	}
	switch t.Kind() {
	case reflect.String:
		if !strings.HasPrefix(inner, `"`) || !json.Valid([]byte(inner)) {
			l.add(ptr, "must be a string-encoded JSON string")
		}
	case reflect.Bool:
		if inner != "true" && inner != "false" {
			l.add(ptr, "must be a string-encoded boolean")
		}
	default:
		if !isNumberLiteral(inner) {
			l.add(ptr, "must be a string-encoded number")
			return
		}
		l.check(t, ptr, json.Number(inner))
	}
}

// check checks the value starting with tok against t.
func (l *locator) check(t reflect.Type, ptr string, tok json.Token) {
	if tok == nil { // null fits anything
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		if t.NumMethod() != 0 {
			l.add(ptr, "cannot be decoded")
		}
		l.skip(tok)
	case reflect.Struct:
		if tok != json.Delim('{') {
			l.mismatch(tok, ptr, "an object")
			return
		}
		fields := structFields(t)
		for l.dec.More() {
			key := l.token().(string)
			fp := ptr + "/" + escapePointer(key)
			f, ok := fields.lookup(key)
			if !ok {
				l.add(fp, "unknown field")
				l.skip(l.token())
				continue
			}
			l.value(f.typ, fp, f.quoted)
		}
		l.token() // '}'
	case reflect.Map:
		if tok != json.Delim('{') {
			l.mismatch(tok, ptr, "an object")
			return
		}
		for l.dec.More() {
			key := l.token().(string)
			fp := ptr + "/" + escapePointer(key)
			if !mapKeyFits(t.Key(), key) {
				l.add(fp, "invalid key")
			}
			l.value(t.Elem(), fp, false)
		}
		l.token() // '}'
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			// []byte is base64 text.
			s, ok := tok.(string)
			if !ok {
				l.mismatch(tok, ptr, "a base64 string")
				return
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				l.add(ptr, "must be a base64 string")
			}
			return
		}
		if tok != json.Delim('[') {
			l.mismatch(tok, ptr, "an array")
			return
		}
		for i := 0; l.dec.More(); i++ {
			if t.Kind() == reflect.Array && i >= t.Len() {
				// encoding/json drops elements beyond the array's length.
				l.skip(l.token())
				continue
			}
			l.value(t.Elem(), ptr+"/"+strconv.Itoa(i), false)
		}
		l.token() // ']'
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			l.mismatch(tok, ptr, "a boolean")
		}
	case reflect.String:
		switch tok := tok.(type) {
		case string:
			if t == jsonNumberType && !isNumberLiteral(tok) {
				l.add(ptr, "must be a number")
			}
		case json.Number:
			if t != jsonNumberType {
				l.mismatch(tok, ptr, "a string")
			}
		default:
			l.mismatch(tok, ptr, "a string")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			l.mismatch(tok, ptr, "an integer")
		} else if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			l.add(ptr, fmt.Sprintf("must be an integer between %d and %d", minInt(t.Bits()), maxInt(t.Bits())))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := tok.(json.Number)
		if !ok {
			l.mismatch(tok, ptr, "an integer")
		} else if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			l.add(ptr, fmt.Sprintf("must be an integer between 0 and %d", uint64(1)<<t.Bits()-1))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := tok.(json.Number)
		if !ok {
			l.mismatch(tok, ptr, "a number")
		} else if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			l.add(ptr, "number out of range")
		}
	default: // channels, funcs, complex numbers: encoding/json refuses them
		l.add(ptr, "cannot be decoded")
		l.skip(tok)
	}
}

func (l *locator) mismatch(tok json.Token, ptr, want string) {
	l.add(ptr, "must be "+want)
	l.skip(tok)
}

func isNumberLiteral(s string) bool {
	return s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) && json.Valid([]byte(s))
}

func minInt(bits int) int64 { return -1 << (bits - 1) }
func maxInt(bits int) int64 { return 1<<(bits-1) - 1 }

// unmarshalerDetail makes a field type's own error into a detail. Such
// errors describe the client's value (a bad time, a bad id); an *errs.Error
// says it client-safely already.
func unmarshalerDetail(err error) string {
	if e, ok := errors.AsType[*errs.Error](err); ok && e.Message != "" {
		return e.Message
	}
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return "has the wrong type"
	}
	return "invalid value"
}

func mapKeyFits(k reflect.Type, key string) bool {
	if reflect.PointerTo(k).Implements(textUnmarshalerType) {
		return reflect.New(k).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(key)) == nil
	}
	switch k.Kind() {
	case reflect.String:
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err := strconv.ParseInt(key, 10, k.Bits())
		return err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		_, err := strconv.ParseUint(key, 10, k.Bits())
		return err == nil
	}
	return false
}

// jsonField is one JSON member of a struct.
type jsonField struct {
	typ    reflect.Type
	quoted bool // the ",string" option
}

// jsonFields are a struct's JSON members as encoding/json sees them.
type jsonFields map[string]jsonField

// lookup matches a key as encoding/json does: exactly, else ignoring case.
func (f jsonFields) lookup(key string) (jsonField, bool) {
	if jf, ok := f[key]; ok {
		return jf, true
	}
	for name, jf := range f {
		if strings.EqualFold(name, key) {
			return jf, true
		}
	}
	return jsonField{}, false
}

// structFields lists t's JSON members following encoding/json's rules:
// exported fields, named by their tag or Go name, "-" skipped, fields of
// embedded structs promoted, the shallowest field winning, and at equal
// depth a tagged field beating untagged ones (a tie drops both).
func structFields(t reflect.Type) jsonFields {
	type candidate struct {
		jsonField
		depth  int
		tagged bool
		drop   bool
	}
	found := map[string]*candidate{}
	visited := map[reflect.Type]bool{}
	type level struct {
		t     reflect.Type
		depth int
	}
	queue := []level{{t, 0}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if visited[cur.t] {
			continue
		}
		visited[cur.t] = true
		for i := 0; i < cur.t.NumField(); i++ {
			sf := cur.t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if !sf.IsExported() && et.Kind() != reflect.Struct {
					continue
				}
				if name == "" && et.Kind() == reflect.Struct {
					queue = append(queue, level{et, cur.depth + 1})
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			tagged := name != ""
			if !tagged {
				name = sf.Name
			}
			jf := jsonField{typ: ft, quoted: hasOption(opts, "string")}
			c, seen := found[name]
			switch {
			case !seen:
				found[name] = &candidate{jsonField: jf, depth: cur.depth, tagged: tagged}
			case c.depth < cur.depth:
				// A shallower field hides this one.
			case c.tagged && !tagged:
			case tagged && !c.tagged:
				*c = candidate{jsonField: jf, depth: cur.depth, tagged: true}
			default:
				c.drop = true
			}
		}
	}
	out := make(jsonFields, len(found))
	for name, c := range found {
		if !c.drop {
			out[name] = c.jsonField
		}
	}
	return out
}

func hasOption(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}
