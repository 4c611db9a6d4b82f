package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piazza-social/piazza/services/user/domain"
)

func TestParseUsernameFoldsCaseAndEnforcesTheAlphabetAndLength(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice_99", "alice_99", true},
		{"abc", "abc", true},
		{strings.Repeat("a", 30), strings.Repeat("a", 30), true},
		{"ab", "", false},
		{strings.Repeat("a", 31), "", false},
		{"al-ice", "", false},
		{"al ice", "", false},
		{"álice", "", false},
		{"alice\x00", "", false},
		{"", "", false},
		{"ALİCE", "", false}, // Unicode capital I with dot must not fold into ASCII
	}
	for _, tc := range tests {
		got, err := domain.ParseUsername(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("ParseUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, domain.ErrUsernameInvalid) {
			t.Errorf("ParseUsername(%q) = %q, %v; want ErrUsernameInvalid", tc.in, got, err)
		}
	}
}

func TestParseEmailLowercasesAndAcceptsOnlyOneBareAddress(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Alice@Example.COM", "alice@example.com"},
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org"},
		{"alice", ""},
		{"alice@", ""},
		{"@example.com", ""},
		{"Alice <alice@example.com>", ""},
		{"alice@example.com, bob@example.com", ""},
		{" alice@example.com", ""},
		{"alice@example.com\n", ""},
		{strings.Repeat("a", 243) + "@example.com", ""}, // 255 characters
		{"", ""},
	}
	for _, tc := range tests {
		got, err := domain.ParseEmail(tc.in)
		if tc.want != "" && (err != nil || got != tc.want) {
			t.Errorf("ParseEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if tc.want == "" && !errors.Is(err, domain.ErrEmailInvalid) {
			t.Errorf("ParseEmail(%q) = %q, %v; want ErrEmailInvalid", tc.in, got, err)
		}
	}
	if _, err := domain.ParseEmail(strings.Repeat("a", 242) + "@example.com"); err != nil {
		t.Errorf("a 254-character address is refused: %v", err)
	}
}

func TestCheckPasswordRefusesShortLongAndCommonPasswords(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"correct horse battery", nil},
		{"ünïcödé-10", nil}, // ten characters, more bytes
		{"short", domain.ErrPasswordTooShort},
		{"123456789", domain.ErrPasswordTooShort},
		{strings.Repeat("x", 257), domain.ErrPasswordTooLong},
		{"1234567890", domain.ErrPasswordCommon},
		{"PASSWORD123", domain.ErrPasswordCommon},
		{"QwertyUiop", domain.ErrPasswordCommon},
	}
	for _, tc := range tests {
		if err := domain.CheckPassword(tc.in); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("CheckPassword(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestNewRegistrationReportsEveryBrokenRuleWithItsField(t *testing.T) {
	_, err := domain.NewRegistration("x", "nope", "short")
	var fields []string
	for _, fe := range domain.FieldErrors(err) {
		fields = append(fields, fe.Field)
	}
	if !slices.Equal(fields, []string{"username", "email", "password"}) {
		t.Fatalf("fields %v (%v)", fields, err)
	}
	if !errors.Is(err, domain.ErrPasswordTooShort) {
		t.Errorf("%v does not wrap ErrPasswordTooShort", err)
	}
	r, err := domain.NewRegistration("Alice", "Alice@Example.com", "correct horse battery")
	if err != nil || r.Username != "alice" || r.Email != "alice@example.com" {
		t.Fatalf("valid registration: %+v, %v", r, err)
	}
}

func TestProfileUpdateLimitsCountCharactersNotBytes(t *testing.T) {
	ptr := func(s string) *string { return &s }
	tests := []struct {
		name        string
		display     *string
		bio         *string
		wantFields  []string
		wantDisplay string
	}{
		{"50 multibyte characters fit", ptr(strings.Repeat("ü", 50)), nil, nil, strings.Repeat("ü", 50)},
		{"51 characters do not", ptr(strings.Repeat("a", 51)), nil, []string{"display_name"}, ""},
		{"surrounding space is trimmed", ptr("  Alice  "), nil, nil, "Alice"},
		{"control characters are refused", ptr("Al\x07ice"), nil, []string{"display_name"}, ""},
		{"160-character bio with a line break fits", nil, ptr(strings.Repeat("b", 80) + "\n" + strings.Repeat("b", 79)), nil, ""},
		{"161-character bio does not", nil, ptr(strings.Repeat("b", 161)), []string{"bio"}, ""},
		{"both wrong", ptr(strings.Repeat("a", 51)), ptr(strings.Repeat("b", 161)), []string{"display_name", "bio"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := domain.NewProfileUpdate(tc.display, tc.bio)
			var fields []string
			for _, fe := range domain.FieldErrors(err) {
				fields = append(fields, fe.Field)
			}
			if !slices.Equal(fields, tc.wantFields) {
				t.Fatalf("fields %v, want %v", fields, tc.wantFields)
			}
			if err == nil && tc.display != nil && *p.DisplayName != tc.wantDisplay {
				t.Errorf("display name %q, want %q", *p.DisplayName, tc.wantDisplay)
			}
		})
	}
}

func TestRefreshTokensAre256BitBase64URLAndHashDeterministically(t *testing.T) {
	tok, hash := domain.NewRefreshToken()
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q is not 43 characters of unpadded base64url", tok)
	}
	again, err := domain.HashRefreshToken(tok)
	if err != nil || string(again) != string(hash) || len(hash) != 32 {
		t.Fatalf("HashRefreshToken = %x, %v; want %x", again, err, hash)
	}
	other, _ := domain.NewRefreshToken()
	if other == tok {
		t.Fatal("two tokens are equal")
	}
	for _, bad := range []string{"", tok[:42], tok + "A", strings.Replace(tok, tok[:1], "+", 1), tok[:42] + "="} {
		if _, err := domain.HashRefreshToken(bad); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
			t.Errorf("HashRefreshToken(%q) = %v, want ErrRefreshTokenInvalid", bad, err)
		}
	}
}

func TestSessionCheckTellsRevokedFromExpired(t *testing.T) {
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	s := domain.Session{ExpiresAt: now.Add(time.Hour)}
	if err := s.Check(now); err != nil {
		t.Errorf("live session: %v", err)
	}
	if err := s.Check(now.Add(time.Hour)); !errors.Is(err, domain.ErrSessionExpired) {
		t.Errorf("at its expiry: %v", err)
	}
	s.RevokedAt = now
	if err := s.Check(now); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Errorf("revoked: %v", err)
	}
}

func TestCursorRoundTripsAndRejectsForgeries(t *testing.T) {
	c := domain.Cursor{At: time.Date(2031, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "0190a0c4-1234-7abc-8def-0123456789ab"}
	got, err := domain.ParseCursor(c.Encode())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, c)
	}
	if got, err := domain.ParseCursor(""); err != nil || !got.IsZero() {
		t.Errorf("empty cursor: %+v, %v", got, err)
	}
	for _, bad := range []string{"!!", "bm90IGEgY3Vyc29y", c.Encode() + "x", strings.Repeat("A", 200),
		domain.Cursor{At: c.At, ID: "not-a-uuid"}.Encode(), domain.Cursor{At: c.At, ID: strings.ToUpper(c.ID)}.Encode()} {
		if _, err := domain.ParseCursor(bad); !errors.Is(err, domain.ErrCursorInvalid) {
			t.Errorf("ParseCursor(%q) = %v, want ErrCursorInvalid", bad, err)
		}
	}
}

func TestPageAndBatchSizesDefaultAndStayInRange(t *testing.T) {
	for in, want := range map[int]int{0: 20, 1: 1, 100: 100, -1: -1, 101: -1} {
		got, err := domain.PageSize(in)
		if (want < 0) != (err != nil) || (want >= 0 && got != want) {
			t.Errorf("PageSize(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[int]int{0: 1000, 1: 1, 5000: 5000, -5: -1, 5001: -1} {
		got, err := domain.FollowerBatchSize(in)
		if (want < 0) != (err != nil) || (want >= 0 && got != want) {
			t.Errorf("FollowerBatchSize(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestErrorsCarrySlugsAndKinds(t *testing.T) {
	if domain.ErrUsernameTaken.Slug() != "username-taken" || domain.ErrUsernameTaken.Kind() != domain.KindConflict {
		t.Errorf("ErrUsernameTaken: %s %d", domain.ErrUsernameTaken.Slug(), domain.ErrUsernameTaken.Kind())
	}
	if domain.ErrRefreshTokenReused.Kind() != domain.KindSessionEnded || domain.ErrInvalidCredentials.Kind() != domain.KindUnauthenticated {
		t.Error("session and credential errors have the wrong kind")
	}
}
