package domain_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/piazza-social/piazza/services/messaging/domain"
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
		{"one character", "x", "x", nil},
		{"empty", "", "", domain.ErrTextEmpty},
		{"only white space", " \n\t\u00a0 ", "", domain.ErrTextEmpty},
		{"4000 ASCII", strings.Repeat("a", 4000), strings.Repeat("a", 4000), nil},
		{"4001 ASCII", strings.Repeat("a", 4001), "", domain.ErrTextTooLong},
		{"4000 four-byte runes", strings.Repeat("😀", 4000), strings.Repeat("😀", 4000), nil},
		{"4001 multi-byte runes", strings.Repeat("✌", 4001), "", domain.ErrTextTooLong},
		{"4000 after trimming padding", "   " + strings.Repeat("b", 4000) + "\n\n", strings.Repeat("b", 4000), nil},
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

func TestClientMsgIDIsOneTo64PrintableCharactersKeptAsIs(t *testing.T) {
	for in, ok := range map[string]bool{
		"a": true, "2f1c-retry": true, " padded ": true, strings.Repeat("é", 64): true,
		"": false, strings.Repeat("x", 65): false, "tab\there": false, "nul\x00": false, "bad\xff": false, "line\nbreak": false,
	} {
		got, err := domain.ParseClientMsgID(in)
		if ok && (err != nil || got != in) {
			t.Errorf("%q: %q, %v", in, got, err)
		}
		if !ok && !errors.Is(err, domain.ErrClientMsgIDInvalid) {
			t.Errorf("%q: err = %v, want ErrClientMsgIDInvalid", in, err)
		}
	}
}

func TestParticipantsAddTheCreatorDropRepeatsAndStayWithinLimits(t *testing.T) {
	me, a, b := uuid.NewString(), uuid.NewString(), uuid.NewString()
	got, err := domain.Participants(me, []string{a, b, a, me})
	want := []string{me, a, b}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Participants = %v, %v; want %v", got, err, want)
	}
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid.NewString()
		}
		return out
	}
	for name, tc := range map[string]struct {
		others []string
		err    error
	}{
		"nobody else":             {nil, domain.ErrParticipantsTooFew},
		"only the creator":        {[]string{me, me}, domain.ErrParticipantsTooFew},
		"49 others (50 in all)":   {many(49), nil},
		"50 others (51 in all)":   {many(50), domain.ErrParticipantsTooMany},
		"49 others and repeats":   {append(many(49), a, a, a), domain.ErrParticipantsTooMany},
		"a malformed id":          {[]string{a, "bob"}, domain.ErrIDInvalid},
		"an upper-case id":        {[]string{strings.ToUpper(a)}, domain.ErrIDInvalid},
		"thousands, not examined": {many(1000), domain.ErrParticipantsTooMany},
	} {
		if _, err := domain.Participants(me, tc.others); !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.err)
		}
	}
	c := domain.Conversation{ParticipantIDs: want}
	if c.Direct() || !c.Has(a) || c.Has(uuid.NewString()) {
		t.Errorf("a group of three: Direct %v, Has(a) %v", c.Direct(), c.Has(a))
	}
	if !(domain.Conversation{ParticipantIDs: []string{a, b}}).Direct() {
		t.Error("a conversation of two is not one-to-one")
	}
}

func TestIDsCarryTheirTimeAndIncreaseStrictlyEvenWhenTheClockDoesNot(t *testing.T) {
	var g domain.IDGenerator
	at := time.Date(2031, 3, 14, 15, 9, 26, 535_897_000, time.UTC)
	id, err := g.New(at)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := domain.IDTime(id); !ok || !got.Equal(at.Truncate(time.Millisecond)) || got.Location() != time.UTC {
		t.Fatalf("IDTime(%s) = %v, %v; want %v", id, got, ok, at.Truncate(time.Millisecond))
	}
	if u := uuid.MustParse(id); u.Version() != 7 || u.Variant() != uuid.RFC4122 || !domain.ValidID(id) {
		t.Fatalf("%s is not a canonical UUIDv7", id)
	}
	// A standing clock, and one that steps back: still strictly increasing.
	ids := []string{id}
	for i := range 5000 {
		when := at
		if i%100 == 99 {
			when = at.Add(-time.Second)
		}
		next, err := g.New(when)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, next)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d (%s) is not after id %d (%s)", i, ids[i], i-1, ids[i-1])
		}
	}
	// 4096 ids fit in a millisecond; the rest carry into the next ones.
	if last, _ := domain.IDTime(ids[len(ids)-1]); last.Sub(at) > 2*time.Millisecond {
		t.Errorf("5001 ids made at one time reach %v", last)
	}
	// Concurrent use.
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				id, err := g.New(time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 4000 {
		t.Errorf("%d distinct ids of 4000", len(seen))
	}
}

func TestIDTimeRefusesWhatIsNoMessageID(t *testing.T) {
	for _, bad := range []string{"", "nope", uuid.NewString(), strings.ToUpper(uuid.Must(uuid.NewV7()).String()),
		"{" + uuid.Must(uuid.NewV7()).String() + "}"} {
		if _, ok := domain.IDTime(bad); ok {
			t.Errorf("IDTime(%q) accepted it", bad)
		}
	}
	if domain.IDFraction("nope") != 0 {
		t.Error("a fraction for no id")
	}
}

func TestCursorsRoundTripAndRejectForgeries(t *testing.T) {
	var g domain.IDGenerator
	id, _ := g.New(time.Now())
	mc := domain.MessageCursor{BeforeID: id}
	if got, err := domain.ParseMessageCursor(mc.Encode()); err != nil || got != mc {
		t.Fatalf("message cursor round trip: %+v, %v", got, err)
	}
	cc := domain.ConversationCursor{At: time.Date(2031, 3, 14, 15, 9, 26, 535_000_000, time.UTC), ID: id}
	if got, err := domain.ParseConversationCursor(cc.Encode()); err != nil || got != cc {
		t.Fatalf("conversation cursor round trip: %+v, %v", got, err)
	}
	if (domain.MessageCursor{}).Encode() != "" || (domain.ConversationCursor{}).Encode() != "" {
		t.Error("a zero cursor does not encode as empty")
	}
	if c, err := domain.ParseMessageCursor(""); err != nil || !c.IsZero() {
		t.Errorf(`ParseMessageCursor("") = %+v, %v`, c, err)
	}
	if c, err := domain.ParseConversationCursor(""); err != nil || !c.IsZero() {
		t.Errorf(`ParseConversationCursor("") = %+v, %v`, c, err)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, bad := range map[string]string{
		"not base64":                  "!!!",
		"padded":                      mc.Encode() + "=",
		"a conversation cursor":       cc.Encode(),
		"no prefix":                   enc(id),
		"not a message id":            enc("m." + uuid.NewString()),
		"upper case":                  enc("m." + strings.ToUpper(id)),
		"too long":                    strings.Repeat("A", 129),
		"conversation: message kind":  "",
		"conversation: bad time":      enc("c.x." + id),
		"conversation: zero time":     enc("c.0." + id),
		"conversation: leading zero":  enc("c.01." + id),
		"conversation: bad id":        enc("c.1.nope"),
		"conversation: no separators": enc("c" + id),
	} {
		if strings.HasPrefix(name, "conversation") {
			if bad == "" {
				bad = mc.Encode()
			}
			if _, err := domain.ParseConversationCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
				t.Errorf("%s: err = %v, want ErrCursorInvalid", name, err)
			}
			continue
		}
		if _, err := domain.ParseMessageCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
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

func TestErrorsCarryDistinctSlugsAndKinds(t *testing.T) {
	all := []*domain.Error{
		domain.ErrTextEmpty, domain.ErrTextTooLong, domain.ErrTextInvalid, domain.ErrIDInvalid, domain.ErrClientMsgIDInvalid,
		domain.ErrParticipantsTooFew, domain.ErrParticipantsTooMany, domain.ErrCursorInvalid, domain.ErrPageSizeInvalid,
		domain.ErrConversationNotFound, domain.ErrMessageNotFound,
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
	if domain.ErrConversationNotFound.Kind() != domain.KindNotFound || domain.ErrMessageNotFound.Kind() != domain.KindNotFound {
		t.Error("missing things are not KindNotFound")
	}
	var f domain.Fields
	f.Add("text", domain.ErrTextEmpty)
	f.Add("cursor", domain.ErrCursorInvalid)
	fes := domain.FieldErrors(errors.Join(errors.New("unrelated"), f.Err()))
	if len(fes) != 2 || fes[0].Field != "text" || !errors.Is(fes[0], domain.ErrTextEmpty) {
		t.Errorf("FieldErrors = %v", fes)
	}
}
