package domain

import (
	_ "embed"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Account limits.
const (
	UsernameMinLen      = 3
	UsernameMaxLen      = 30
	EmailMaxLen         = 254 // RFC 5321's path limit minus the angle brackets
	PasswordMinLen      = 10  // in characters (runes)
	PasswordMaxBytes    = 256 // bounds the work one login can ask for
	DisplayNameMaxRunes = 50
	BioMaxRunes         = 160
)

// User is an account as the rest of the service sees it; the password hash never leaves the
// store except for a login check.
type User struct {
	ID             string // UUIDv7
	Username       string // normalised: lowercase [a-z0-9_]{3,30}
	Email          string // normalised: lowercase
	DisplayName    string
	Bio            string
	FollowersCount int64
	FollowingCount int64
	CreatedAt      time.Time
}

// ParseUsername normalises a username (ASCII letters are folded to lowercase, so "Alice" and
// "alice" are the same account) and checks that it is 3–30 characters of [a-z0-9_].
func ParseUsername(s string) (string, error) {
	u := foldASCII(s)
	if len(u) < UsernameMinLen || len(u) > UsernameMaxLen {
		return "", ErrUsernameInvalid
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return "", ErrUsernameInvalid
		}
	}
	return u, nil
}

// ParseEmail normalises an email address to lowercase and checks that it is one bare address
// ("a@example.com", not "A <a@example.com>") of at most 254 characters, as net/mail parses it.
func ParseEmail(s string) (string, error) {
	if s == "" || len(s) > EmailMaxLen || strings.TrimSpace(s) != s {
		return "", ErrEmailInvalid
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrEmailInvalid
	}
	local, host, ok := strings.Cut(addr.Address, "@")
	if !ok || local == "" || host == "" {
		return "", ErrEmailInvalid
	}
	return strings.ToLower(addr.Address), nil
}

//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords is the built-in deny list, lowercased. It is read-only after package
// initialisation (parsing an embedded constant has no side effects).
var commonPasswords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for line := range strings.Lines(commonPasswordsText) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m[foldASCII(line)] = struct{}{}
	}
	return m
}()

// CheckPassword checks a new password: at least 10 characters, at most 256 bytes, and not on
// the built-in list of common passwords (compared case-insensitively). The first broken rule
// is returned.
func CheckPassword(p string) error {
	switch {
	case utf8.RuneCountInString(p) < PasswordMinLen:
		return ErrPasswordTooShort
	case len(p) > PasswordMaxBytes:
		return ErrPasswordTooLong
	}
	if _, common := commonPasswords[foldASCII(p)]; common {
		return ErrPasswordCommon
	}
	return nil
}

// Registration is a validated, normalised sign-up request.
type Registration struct {
	Username string
	Email    string
	Password string
}

// NewRegistration validates a sign-up request. Every broken rule is reported, each as a
// *FieldError naming its field ("username", "email", "password").
func NewRegistration(username, email, password string) (Registration, error) {
	var errs fields
	var r Registration
	var err error
	if r.Username, err = ParseUsername(username); err != nil {
		errs.Add("username", ErrUsernameInvalid)
	}
	if r.Email, err = ParseEmail(email); err != nil {
		errs.Add("email", ErrEmailInvalid)
	}
	if err := CheckPassword(password); err != nil {
		errs.Add("password", err.(*Error))
	}
	r.Password = password
	if err := errs.Err(); err != nil {
		return Registration{}, err
	}
	return r, nil
}

// ProfileUpdate changes some of a profile's fields; a nil field is left as it is.
type ProfileUpdate struct {
	DisplayName *string
	Bio         *string
}

// Empty reports whether the update changes nothing.
func (p ProfileUpdate) Empty() bool { return p.DisplayName == nil && p.Bio == nil }

// NewProfileUpdate validates a profile change: a display name of at most 50 characters without
// control characters, a bio of at most 160 characters (line breaks allowed, other control
// characters not). Leading and trailing white space is trimmed from both; an empty value clears
// the field.
func NewProfileUpdate(displayName, bio *string) (ProfileUpdate, error) {
	var errs fields
	var p ProfileUpdate
	if displayName != nil {
		d := strings.TrimSpace(*displayName)
		if !validText(d, DisplayNameMaxRunes, false) {
			errs.Add("display_name", ErrDisplayNameInvalid)
		}
		p.DisplayName = &d
	}
	if bio != nil {
		b := strings.TrimSpace(*bio)
		if !validText(b, BioMaxRunes, true) {
			errs.Add("bio", ErrBioInvalid)
		}
		p.Bio = &b
	}
	if err := errs.Err(); err != nil {
		return ProfileUpdate{}, err
	}
	return p, nil
}

func validText(s string, maxRunes int, newlines bool) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(newlines && r == '\n') {
			return false
		}
	}
	return true
}
