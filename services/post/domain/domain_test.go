package domain_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/post/domain"
)

func TestParseTextTrimsAndCountsCharactersNotBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{"plain", "hello", "hello", nil},
		{"trimmed on both ends", " \t\n hello world \r\n", "hello world", nil},
		{"inner line breaks kept", "line one\n\nline two", "line one\n\nline two", nil},
		{"unicode space trimmed", "\u00a0\u2003hi\u3000", "hi", nil},
		{"one character", "x", "x", nil},
		{"empty", "", "", domain.ErrTextEmpty},
		{"only white space", " \n\t\u00a0 ", "", domain.ErrTextEmpty},
		{"500 ASCII", strings.Repeat("a", 500), strings.Repeat("a", 500), nil},
		{"501 ASCII", strings.Repeat("a", 501), "", domain.ErrTextTooLong},
		{"500 multi-byte runes (1500 bytes)", strings.Repeat("é✌", 250), strings.Repeat("é✌", 250), nil},
		{"501 multi-byte runes", strings.Repeat("✌", 501), "", domain.ErrTextTooLong},
		{"500 after trimming padding", "   " + strings.Repeat("b", 500) + "\n\n", strings.Repeat("b", 500), nil},
		{"NUL", "a\x00b", "", domain.ErrTextInvalid},
		{"invalid UTF-8", "a\xffb", "", domain.ErrTextInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.ParseText(tc.in)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("text = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOnlyTheAuthorMayDeleteAPost(t *testing.T) {
	p := domain.Post{ID: "p", AuthorID: "alice"}
	if err := p.CheckDelete("alice"); err != nil {
		t.Errorf("author: %v", err)
	}
	for _, who := range []string{"bob", ""} {
		if err := p.CheckDelete(who); !errors.Is(err, domain.ErrNotAuthor) {
			t.Errorf("%q: %v, want ErrNotAuthor", who, err)
		}
	}
	if (domain.Post{}).CheckDelete("") == nil {
		t.Error("an empty caller may delete a post without author")
	}
}

func TestNewIDsAreValidAndSortByCreation(t *testing.T) {
	var ids []string
	for range 1000 {
		id, err := domain.NewID()
		if err != nil {
			t.Fatal(err)
		}
		if !domain.ValidID(id) {
			t.Fatalf("NewID made %q, which ValidID refuses", id)
		}
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Error("ids made one after another do not sort in creation order")
	}
	for _, bad := range []string{"", "not-a-uuid", strings.ToUpper(ids[0]), "{" + ids[0] + "}"} {
		if domain.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestCursorRoundTripsAndRejectsForgeries(t *testing.T) {
	id, _ := domain.NewID()
	c := domain.Cursor{At: time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC), ID: id}
	got, err := domain.ParseCursor(c.Encode())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, c)
	}
	if (domain.Cursor{}).Encode() != "" {
		t.Error("the zero cursor does not encode as empty")
	}
	if z, err := domain.ParseCursor(""); err != nil || !z.IsZero() {
		t.Errorf(`ParseCursor("") = %+v, %v`, z, err)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, bad := range map[string]string{
		"not base64":        "!!!",
		"padded base64":     enc("1."+id) + "=",
		"no separator":      enc("1" + id),
		"non-numeric time":  enc("x." + id),
		"zero time":         enc("0." + id),
		"negative time":     enc("-5." + id),
		"leading zero time": enc("01." + id),
		"bad id":            enc("1.not-an-id"),
		"upper-case id":     enc("1." + strings.ToUpper(id)),
		"too long":          strings.Repeat("A", 129),
	} {
		if _, err := domain.ParseCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
			t.Errorf("%s: err = %v, want ErrCursorInvalid", name, err)
		}
	}
}

func TestPageSizeDefaultsAndStaysInRange(t *testing.T) {
	for in, want := range map[int]int{0: 20, 1: 1, 20: 20, 100: 100} {
		if got, err := domain.PageSize(in); err != nil || got != want {
			t.Errorf("PageSize(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []int{-1, 101, 1 << 30} {
		if _, err := domain.PageSize(in); !errors.Is(err, domain.ErrPageSizeInvalid) {
			t.Errorf("PageSize(%d): %v, want ErrPageSizeInvalid", in, err)
		}
	}
}

func TestErrorsCarrySlugsAndKinds(t *testing.T) {
	all := []*domain.Error{
		domain.ErrTextEmpty, domain.ErrTextTooLong, domain.ErrTextInvalid, domain.ErrIDInvalid,
		domain.ErrCursorInvalid, domain.ErrPageSizeInvalid, domain.ErrPostNotFound, domain.ErrNotAuthor,
	}
	seen := map[string]bool{}
	for _, e := range all {
		if e.Slug() == "" || e.Error() == "" || !slices.Contains(domain.Kinds(), e.Kind()) {
			t.Errorf("%q: slug %q, kind %d", e.Error(), e.Slug(), e.Kind())
		}
		if seen[e.Slug()] {
			t.Errorf("slug %q used twice", e.Slug())
		}
		seen[e.Slug()] = true
	}
	if domain.ErrNotAuthor.Kind() != domain.KindForbidden || domain.ErrPostNotFound.Kind() != domain.KindNotFound {
		t.Error("permission and existence errors have the wrong kinds")
	}
}

func TestFieldErrorsAreFoundThroughJoinsAndWrapping(t *testing.T) {
	var f domain.Fields
	if f.Err() != nil {
		t.Fatal("no violations, yet an error")
	}
	f.Add("text", domain.ErrTextEmpty)
	f.Add("cursor", domain.ErrCursorInvalid)
	err := errors.Join(errors.New("unrelated"), f.Err())
	fes := domain.FieldErrors(err)
	if len(fes) != 2 || fes[0].Field != "text" || fes[1].Field != "cursor" {
		t.Fatalf("FieldErrors = %v", fes)
	}
	if !errors.Is(err, domain.ErrTextEmpty) || fes[0].Error() != "text: "+domain.ErrTextEmpty.Error() {
		t.Errorf("field error %q does not unwrap to its rule", fes[0])
	}
}
